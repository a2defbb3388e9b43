"""Curate candidate training images: ``vidrestore curate IN_DIR OUT_DIR``.

An image under ``IN_DIR`` (recursive; videos are left out, and counted) is kept when, checked in
this order (the first failure is the rejection reason written to the manifest):

1. ``unreadable:<message>`` — it decodes (a damaged file is rejected, never a crash);
2. ``too_small`` — both sides are at least ``min_size`` pixels (default 500);
3. ``flat_background`` — its **background score** is at least ``min_background``;
4. ``low_quality:<class>`` — the quality classifier (:mod:`vidrestore.quality`) puts it at or
   above ``min_class`` (default ``good``; ``poor`` switches the check off and needs no model).

Background score
----------------
``background = content × (1 − flat)``, both fractions in [0, 1]:

- ``content``: the image is area-downscaled so its short side is 512 px (one fixed analysis
  scale, so the figure does not depend on resolution, and pixel-level sensor noise or added film
  grain averages away), cut into 16×16 blocks, and ``content`` is the fraction of blocks whose
  luma standard deviation exceeds 4/255 — the share of the picture with visible structure. A
  flat or uniform backdrop, a soft gradient wallpaper or a sky-only frame scores near 0.
- ``flat``: the fraction of native-resolution pixels exactly equal (8-bit, every channel) to both
  their right and lower neighbours. Camera pictures carry sensor noise everywhere, so exact
  equality is rare outside clipped or very smooth, heavily compressed areas; vector graphics and
  rendered wallpapers have large perfectly flat areas.

Calibration on the demo corpus (``data/corpus/{train,val}``, 61 Debian/KDE/MATE wallpapers; the
ground truth below was decided by looking at every picture; ``benchmarks/curate_throughput.py
--calibrate`` recomputes it). Photos (23): MATE ``nature__`` Aqua, Blinds, Dune, FreshFlower,
Garden, GreenMeadow, LadyBird, RainDrops, Storm, TwoWings, Wood, YellowFlower; KDE BytheWater,
ColdRipple, ColorfulCups, DarkestHour, EveningGlow, FallenLeaf, Grey, Kite, OneStandsOut, Path,
summer_1am. Everything else (38) is a graphic or artwork: vector/rendered wallpapers (Altai,
Canopee, Cascade, Cluster, Elarun, Flow, FlyingKonqui, Honeywave, IceCold, Kay, Kokkini,
MilkyWay, Opal, PastelHills, Patak, Shell, Volna, MATE abstract/desktop), the paintings Autumn
and SafeLanding, and Elephants (a photographed painting: canvas texture, but not a scene).

With the default threshold 0.2 the criterion keeps 22/23 photos (rejects DarkestHour: a misty,
almost uniform lake) and rejects 25/38 graphics. It keeps 13 graphics that carry texture
everywhere: film grain over flat shapes (Volna, Honeywave, Patak, Patak_dark, Shell, Canopee,
Ubuntu-Mate-Cold, Float-into-MATE), dithered gradients (Gulp, Stripes) and paintings (Autumn,
SafeLanding, Elephants). Telling synthetic grain from sensor noise needs more than block
statistics; the quality step does not remove them either. Threshold 0.25 loses 3 photos
(+ColdRipple, summer_1am) and keeps 9 graphics; 0.3 loses 6 photos and keeps 7 graphics.

Output: kept images are copied (``link=True``: hard-linked, falling back to a copy) to the same
relative path under ``OUT_DIR``; inputs are never modified. ``OUT_DIR/manifest.csv`` gets one
row per image (path, width, height, content, flat, background, p_poor, p_medium, p_good, class,
decision, reason; blank where a check was not reached), appended as each finishes, so an
interrupted run resumes and a re-run skips every image the manifest holds (delete a row to judge an
image again). ``OUT_DIR/curate.json`` records the settings: a re-run with other thresholds, class,
model or crops is refused (use another OUT_DIR, or empty this one). Earlier curate outputs inside
``IN_DIR`` (folders holding a curate manifest) are not judged again. Work is spread over
``jobs`` processes (default: all cores), each with its own copy of the classifier.
"""

from __future__ import annotations

import csv
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from vidrestore.data import IMAGE_EXTENSIONS, list_media
from vidrestore.errors import VidrestoreError
from vidrestore.io._files import changed_settings, folders_holding, make_folder, record_settings
from vidrestore.nets.quality import CLASSES

__all__ = ["BackgroundStats", "CurateConfig", "MANIFEST_FIELDS", "background_stats", "curate", "judge_image"]

log = logging.getLogger(__name__)

MANIFEST = "manifest.csv"
MANIFEST_FIELDS = ["path", "width", "height", "content", "flat", "background", "p_poor", "p_medium", "p_good",
                   "class", "decision", "reason"]
ANALYSIS_SHORT_SIDE = 512
BLOCK = 16
CONTENT_STD = 4.0 / 255.0


@dataclass(frozen=True)
class BackgroundStats:
    content: float  # share of 16×16 blocks (at 512-px short side) with luma std > 4/255
    flat: float  # share of native pixels equal to their right and lower neighbours
    score: float  # content × (1 − flat)


def background_stats(pixels: np.ndarray) -> BackgroundStats:
    """Background score of an RGB image ``(H, W, 3)``, uint8/uint16 or float32 in [0, 1]."""
    from vidrestore.io import from_float, to_float

    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"expected (H, W, 3) RGB, got shape {pixels.shape}")
    u8 = pixels if pixels.dtype == np.uint8 else from_float(to_float(pixels), np.uint8)
    core = u8[:-1, :-1]
    same = (core == u8[:-1, 1:]).all(axis=2) & (core == u8[1:, :-1]).all(axis=2)
    flat = float(same.mean()) if same.size else 1.0
    luma = cv2.cvtColor(u8, cv2.COLOR_RGB2GRAY).astype(np.float32) * np.float32(1.0 / 255.0)
    height, width = luma.shape
    scale = min(height, width) / ANALYSIS_SHORT_SIDE
    if scale > 1.0:
        luma = cv2.resize(luma, (max(BLOCK, round(width / scale)), max(BLOCK, round(height / scale))),
                          interpolation=cv2.INTER_AREA)
    h, w = luma.shape[0] // BLOCK * BLOCK, luma.shape[1] // BLOCK * BLOCK
    if h == 0 or w == 0:
        content = 0.0
    else:
        blocks = luma[:h, :w].reshape(h // BLOCK, BLOCK, w // BLOCK, BLOCK)
        content = float((blocks.std(axis=(1, 3)) > CONTENT_STD).mean())
    return BackgroundStats(content=content, flat=flat, score=content * (1.0 - flat))


@dataclass(frozen=True)
class CurateConfig:
    min_size: int = 500  # both sides at least this many pixels
    min_background: float = 0.2  # background score threshold (see the module docstring)
    min_class: str = "good"  # poor | medium | good; poor = no quality check
    model: str | None = None  # quality model (.safetensors); None = the shipped one
    crop_count: int | None = None  # crops pooled by the classifier; None = the model's own
    link: bool = False  # hard-link kept files instead of copying

    def __post_init__(self) -> None:
        if self.min_class not in CLASSES:
            raise ValueError(f"min_class must be one of {', '.join(CLASSES)}, got {self.min_class!r}")
        if self.min_size < 1 or not 0.0 <= self.min_background <= 1.0:
            raise ValueError("min_size must be >= 1 and min_background in [0, 1]")

    @property
    def uses_model(self) -> bool:
        return self.min_class != "poor" or self.model is not None


_MODEL_CACHE: dict[tuple[str | None, int | None], Any] = {}


def _quality_model(config: CurateConfig):
    """The classifier, loaded once per process."""
    from vidrestore.quality import QualityModel

    key = (config.model, config.crop_count)
    if key not in _MODEL_CACHE:
        _MODEL_CACHE[key] = QualityModel(config.model, crop_count=config.crop_count)
    return _MODEL_CACHE[key]


def judge_image(path: str | Path, config: CurateConfig, relative: str | None = None) -> dict[str, str]:
    """Run the checks on one image; returns its manifest row (``decision`` keep or reject)."""
    from vidrestore.data import load_rgb
    from vidrestore.io import to_float

    path = Path(path)
    row = dict.fromkeys(MANIFEST_FIELDS, "")
    row["path"] = relative or path.name
    try:
        pixels = load_rgb(path)
    except (VidrestoreError, OSError, ValueError) as exc:
        message = " ".join(str(getattr(exc, "reason", exc)).split())  # one line, without the path again
        return {**row, "decision": "reject", "reason": f"unreadable:{message}"}
    height, width = pixels.shape[:2]
    row.update(width=str(width), height=str(height))
    if min(height, width) < config.min_size:
        return {**row, "decision": "reject", "reason": "too_small"}
    stats = background_stats(pixels)
    row.update(content=f"{stats.content:.4f}", flat=f"{stats.flat:.4f}", background=f"{stats.score:.4f}")
    if stats.score < config.min_background:
        return {**row, "decision": "reject", "reason": "flat_background"}
    if config.uses_model:
        result = _quality_model(config).predict_array(to_float(pixels))
        p = result.probabilities
        row.update(p_poor=f"{p[0]:.4f}", p_medium=f"{p[1]:.4f}", p_good=f"{p[2]:.4f}", **{"class": result.label})
        if CLASSES.index(result.label) < CLASSES.index(config.min_class):
            return {**row, "decision": "reject", "reason": f"low_quality:{result.label}"}
    return {**row, "decision": "keep"}


def _place(source: Path, target: Path, link: bool) -> None:
    """Copy (or hard-link) ``source`` to ``target`` atomically; never touches ``source``."""
    from vidrestore.io._files import partial_path

    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = partial_path(target, unique=True)
    try:
        if link:
            try:
                os.link(source, temporary)
            except OSError:
                shutil.copy2(source, temporary)
        else:
            shutil.copy2(source, temporary)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def _task(args: tuple[Path, str, Path, CurateConfig]) -> dict[str, str]:
    source, relative, out_dir, config = args
    try:
        row = judge_image(source, config, relative)
        if row["decision"] == "keep":
            _place(source, out_dir / relative, config.link)
    except VidrestoreError as exc:  # a model problem: stop the run, with its message
        return {"error": str(exc)}
    return row


_SETTINGS = "curate.json"  # the settings OUT_DIR's decisions were made with


def _settings(config: CurateConfig) -> dict[str, Any]:
    return {"min_size": config.min_size, "min_background": config.min_background, "min_class": config.min_class,
            "model": str(Path(config.model).resolve()) if config.model else None, "crop_count": config.crop_count}


def _check_settings(out_dir: Path, config: CurateConfig) -> None:
    """Refuse to add decisions made with other settings to an OUT_DIR's manifest: the re-run would
    skip every image already judged, and the folder would follow the earlier settings."""
    if not (out_dir / MANIFEST).is_file():
        return
    now = _settings(config)
    if not now["model"] and now["min_class"] == "poor":  # no model used: any earlier one is no difference
        now.pop("model")
    changed = changed_settings(out_dir / _SETTINGS, now)
    if changed is None:
        # Made by an older vidrestore (or the settings file was damaged): nothing to compare.
        log.warning("%s: its settings were not recorded; the decisions in %s are kept as they are (empty the "
                    "folder to judge every image with these settings)", out_dir, MANIFEST)
    elif changed:
        raise ValueError(f"{out_dir} was curated with other settings ({'; '.join(changed)}): use those, or another "
                         f"OUT_DIR (or empty this one to judge every image again)")


def _read_manifest(path: Path) -> dict[str, dict[str, str]]:
    """Rows already judged, by path. A crash can cut the last line: such a row is dropped (and
    judged again) and the manifest rewritten atomically with the complete rows."""
    from vidrestore.quality import _rewrite_csv

    rows: dict[str, dict[str, str]] = {}
    if not path.is_file():
        return rows
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            if row.get("decision") in ("keep", "reject") and None not in row.values():
                rows[row["path"]] = row
    _rewrite_csv(path, list(rows.values()), MANIFEST_FIELDS)
    return rows


def curate(
    in_dir: str | Path,
    out_dir: str | Path,
    config: CurateConfig | None = None,
    *,
    jobs: int | None = None,
    progress: bool = True,
) -> dict[str, int]:
    """Judge every image under ``in_dir``; returns counts ``{"kept", "rejected", "skipped"}``,
    per-reason counts (``"too_small"``, ``"flat_background"``, ``"low_quality"``, ``"unreadable"``)
    and ``"videos"``, the videos left out (curation judges photos only)."""
    from vidrestore.quality import _pool_map

    config = config or CurateConfig()
    in_dir, out_dir = Path(in_dir).resolve(), Path(out_dir).resolve()
    if not in_dir.is_dir():
        raise FileNotFoundError(f"{in_dir}: not a folder")
    if out_dir == in_dir:
        raise ValueError("OUT_DIR must differ from IN_DIR (inputs are never modified)")
    if config.uses_model:
        _quality_model(config)  # a missing or bad model fails here, before any work
    manifest_path = out_dir / MANIFEST
    _check_settings(out_dir, config)
    make_folder(out_dir)
    done = _read_manifest(manifest_path)
    record_settings(out_dir / _SETTINGS, _settings(config))
    # Earlier curate outputs inside IN_DIR (not this one's) are copies of its images, not more of them.
    earlier = [folder for folder in folders_holding(in_dir, MANIFEST, MANIFEST_FIELDS)
               if folder not in (out_dir, in_dir)]  # IN_DIR may be one
    for folder in earlier:
        log.warning("%s: holds an earlier curate output (%s); its images are not judged again", folder, MANIFEST)
    tasks, videos = [], 0
    for path in list_media(in_dir):
        if path.is_relative_to(out_dir) or any(path.is_relative_to(folder) for folder in earlier):
            continue
        if path.suffix.lower() not in IMAGE_EXTENSIONS:
            videos += 1
            continue
        relative = path.relative_to(in_dir).as_posix() if path.is_relative_to(in_dir) else path.name
        previous = done.get(relative)
        if previous is None:
            tasks.append((path, relative, out_dir, config))
        elif previous["decision"] == "keep" and not (out_dir / relative).is_file():
            _place(path, out_dir / relative, config.link)  # a kept file deleted since: put it back
    counts = {"kept": 0, "rejected": 0, "skipped": len(done), "too_small": 0, "flat_background": 0,
              "low_quality": 0, "unreadable": 0, "videos": videos}
    jobs = min(jobs or os.cpu_count() or 1, max(1, len(tasks)))
    exists = manifest_path.is_file() and manifest_path.stat().st_size > 0
    with open(manifest_path, "a", newline="") as handle, tqdm(total=len(tasks), disable=not progress,
                                                               desc="curate", unit="image") as bar:
        writer = csv.DictWriter(handle, fieldnames=MANIFEST_FIELDS)
        if not exists:
            writer.writeheader()
        for row in _pool_map(_task, tasks, jobs):
            if "error" in row:
                raise VidrestoreError(row["error"])
            writer.writerow(row)
            handle.flush()
            if row["decision"] == "keep":
                counts["kept"] += 1
            else:
                counts["rejected"] += 1
                counts[row["reason"].split(":", 1)[0]] += 1
            bar.update(1)
    return counts
