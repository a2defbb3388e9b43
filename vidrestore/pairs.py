"""Write a reproducible paired (degraded, clean) set to disk: ``vidrestore degrade IN OUT``.

For every image or video under ``IN`` (recursive) and every variant ``k``, a degradation plan
is drawn from a seed derived from ``(seed, relative path, k)`` — so a file's result does not
depend on which other files are in the folder — and applied:

- images → ``OUT/degraded/<rel>__v<k>.png`` (PNG: the degradation's own artifacts, JPEG
  included, are in the pixels; 16-bit sources stay 16-bit); the clean original is hard-linked
  (or copied) to ``OUT/clean/<rel>``;
- videos → ``OUT/degraded/<rel>__v<k>.mp4`` (the plan's H.264 step is the output encoder at its
  CRF; without one, lossless FFV1 in ``.mkv``); per-frame noise, streaming in bounded memory.

``OUT/manifest.jsonl`` gets one JSON line per finished output with its plan (every parameter
and noise seed), written after the output file is complete (files are written atomically).
A re-run with the same seed and config skips what the manifest lists, so an interrupted run
resumes without redoing or corrupting finished files (a source whose size or modification time
changed since is degraded again, and its clean copy replaced); a re-run with another seed or config is
refused (its pairs would mix with the old ones under the same names): write to another folder, or
delete ``OUT`` to start over. ``OUT`` may not be ``IN`` or inside it (a re-run would degrade its own
outputs). Work is spread over ``jobs`` processes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from vidrestore.io.listing import VIDEO_EXTENSIONS, list_media
from vidrestore.parallel import pool_map
from vidrestore.degrade import DegradeConfig, Plan, apply_op, apply_plan, sample_plan
from vidrestore.degrade.sample import H264, TemporalNoise
from vidrestore.degrade.video_ops import noise_sigmas
from vidrestore.errors import NoVideoStreamError, VidrestoreError
from vidrestore.io._files import FolderInUse, atomic_output, hold_folder, make_folder

__all__ = ["PairTask", "plan_tasks", "run_task", "write_pairs"]

log = logging.getLogger(__name__)

MANIFEST = "manifest.jsonl"


@dataclass(frozen=True)
class PairTask:
    source: Path
    relative: str
    variant: int
    seed: int
    out_dir: Path
    config: dict[str, Any]
    settings: str  # digest of the run's seed and config (see _settings_digest)

    @property
    def key(self) -> str:
        return f"{self.relative}#v{self.variant}#{self.settings}"

    @property
    def is_video(self) -> bool:
        return self.source.suffix.lower() in VIDEO_EXTENSIONS


def _derive_seed(seed: int, relative: str, variant: int) -> int:
    digest = hashlib.sha256(f"{seed}\0{relative}\0{variant}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def _settings_digest(seed: int, config: DegradeConfig) -> str:
    """What a pair depends on besides its source: the run's seed and degradation config."""
    text = json.dumps({"seed": seed, "config": config.to_dict()}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def plan_tasks(in_path: Path, out_dir: Path, *, seed: int, variants: int, config: DegradeConfig) -> list[PairTask]:
    in_path = Path(in_path)
    root = in_path if in_path.is_dir() else in_path.parent
    settings = _settings_digest(seed, config)
    tasks = []
    for source in list_media(in_path):
        try:
            relative = source.relative_to(root.resolve()).as_posix()
        except ValueError:  # a link that points outside IN
            relative = source.name
        for variant in range(variants):
            tasks.append(PairTask(source, relative, variant, _derive_seed(seed, relative, variant), out_dir,
                                  config.to_dict(), settings))
    return tasks


def _source_stat(path: Path) -> list[int]:
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns]


def _link_or_copy(source: Path, target: Path) -> None:
    """``target`` as a hard link to ``source`` (or a copy with its mtime); one that is already
    that file, or a copy of this version of it, is kept."""
    if target.exists() and (os.path.samefile(source, target) or _source_stat(source) == _source_stat(target)):
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name("." + target.name + ".partial")
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copy2(source, tmp)
    os.replace(tmp, target)


def _degrade_image(task: PairTask, plan: Plan) -> str:
    from vidrestore.io import Image, from_float, read_image, split_alpha, to_float, write_image, merge_alpha

    image = read_image(task.source)
    color, alpha = split_alpha(image.pixels)
    gray = color.shape[2] == 1
    rgb = to_float(np.repeat(color, 3, axis=2) if gray else color)
    out = apply_plan(rgb, plan)
    if gray:
        out = out.mean(axis=2, keepdims=True)
    depth = np.uint16 if color.dtype == np.float32 else color.dtype  # a float TIFF: 16-bit PNG
    if alpha is not None and alpha.dtype == np.float32:
        alpha = from_float(alpha, np.uint16)
    pixels = merge_alpha(from_float(out, depth), alpha)
    target = task.out_dir / "degraded" / f"{task.relative}__v{task.variant}.png"
    write_image(target, Image(pixels=pixels, icc_profile=image.icc_profile, exif=image.exif))
    return target.relative_to(task.out_dir).as_posix()


def _degrade_video(task: PairTask, plan: Plan) -> str:
    from vidrestore.io import VideoReader, VideoWriter, from_float, probe, to_float

    info = probe(task.source)
    h264 = next((op for op in plan.ops if isinstance(op, H264)), None)
    drift = next((op for op in plan.ops if isinstance(op, TemporalNoise)), None)
    per_frame = [op for op in plan.ops if not isinstance(op, (H264, TemporalNoise))]
    suffix = ".mp4" if h264 else ".mkv"
    target = task.out_dir / "degraded" / f"{task.relative}__v{task.variant}{suffix}"
    options: dict[str, Any] = {"codec": "libx264", "crf": h264.crf, "preset": h264.preset} if h264 else {"codec": "ffv1"}
    if info.interlaced:
        log.warning("%s: interlaced: its pairs are whole frames (both fields together); deinterlace it first for "
                    "progressive training pairs", task.source)
    with VideoReader(task.source) as reader, VideoWriter(
        target,
        width=info.width,
        height=info.height,
        fps=info.fps,
        time_base=info.time_base,
        rotation=info.rotation,
        audio_from=task.source if info.has_audio else None,
        bit_depth=8 if h264 else min(info.bit_depth, 16),
        sample_aspect_ratio=info.sample_aspect_ratio,  # a pair looks the same in a player (anamorphic DV, DVD)
        field_order=info.field_order,
        **options,
    ) as writer:
        from vidrestore.degrade import ops as degrade_ops

        for frame in reader:
            pixels = to_float(frame.rgb)
            for op in per_frame:
                pixels = apply_op(pixels, op, frame_index=frame.index)
            if drift is not None:
                sigma = noise_sigmas(frame.index + 1, sigma_min=drift.sigma_min, sigma_max=drift.sigma_max,
                                     period=drift.period, phase=drift.phase)[-1]
                pixels = degrade_ops.gaussian_noise(pixels, mean=0.0, sigma=float(sigma), seed=drift.seed * 100003 + frame.index)
            writer.write(from_float(pixels, frame.rgb.dtype), pts=frame.pts)
    return target.relative_to(task.out_dir).as_posix()


def run_task(task: PairTask) -> dict[str, Any]:
    """Degrade one (file, variant); returns its manifest record (``error`` set on failure)."""
    record: dict[str, Any] = {"key": task.key, "source": task.relative, "variant": task.variant, "seed": task.seed,
                              "settings": task.settings}
    try:
        record["source_stat"] = _source_stat(task.source)  # size, mtime: a re-run redoes an edited source
        plan = sample_plan(DegradeConfig.from_dict(task.config), task.seed)
        record["degraded"] = (_degrade_video if task.is_video else _degrade_image)(task, plan)
        clean = task.out_dir / "clean" / task.relative
        _link_or_copy(task.source, clean)
        record["clean"] = clean.relative_to(task.out_dir).as_posix()
        record["plan"] = plan.to_dict()
    except NoVideoStreamError:  # audio alone under a video suffix (a .3gp voice memo): not a failure
        record["left_alone"] = f"{task.source}: {NoVideoStreamError.LEFT_ALONE}"
    except (VidrestoreError, OSError, ValueError) as exc:  # this file fails, named; the others go on
        record["error"] = str(exc) if str(task.source) in str(exc) else f"{task.source}: {exc}"
    return record


def _read_manifest(path: Path) -> dict[str, dict[str, Any]]:
    """Finished records by key (a crash can leave a cut last line; earlier runs' failures are
    left out)."""
    done: dict[str, dict[str, Any]] = {}
    if not path.is_file():
        return done
    with open(path) as handle:
        for line in handle:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a crash: that task is redone
            if "error" not in record:
                done[record["key"]] = record
    return done


def _edited(source: Path, record: dict[str, Any]) -> bool:
    """Whether ``source`` changed since ``record`` was made from it (records from before sources'
    sizes and times were kept count as unchanged)."""
    if "source_stat" not in record:
        return False
    try:
        changed = _source_stat(source) != record["source_stat"]
    except OSError:
        return False  # gone since listing: its task reports that
    if changed:
        log.info("%s changed since it was degraded: degrading it again", source)
    return changed


def write_pairs(
    in_path: str | Path,
    out_dir: str | Path,
    *,
    seed: int = 0,
    variants: int = 1,
    config: DegradeConfig | None = None,
    jobs: int | None = None,
    progress: bool = True,
) -> dict[str, int]:
    """Degrade everything under ``in_path`` into ``out_dir``; returns counts
    ``{"done", "skipped", "left_alone", "failed"}`` (skipped: already done; left alone: no video
    stream). Failures are logged and listed in the manifest.

    Raises:
        FileNotFoundError: ``in_path`` does not exist.
        ValueError: nothing to degrade, ``variants`` < 1, ``out_dir`` is ``in_path`` or inside it,
            or ``out_dir`` holds pairs made with another seed or config.
    """
    in_path, out_dir = Path(in_path), Path(out_dir)
    if variants < 1:
        raise ValueError(f"variants must be >= 1, got {variants}")
    if in_path.is_dir() and out_dir.resolve().is_relative_to(in_path.resolve()):
        raise ValueError(f"{out_dir}: the output folder must not be the input folder or inside it "
                         "(a re-run would degrade its own outputs)")
    config = config or DegradeConfig()
    tasks = plan_tasks(in_path, out_dir, seed=seed, variants=variants, config=config)
    if not tasks:
        raise ValueError(f"{in_path}: no images or videos to degrade")
    make_folder(out_dir)
    try:  # a second run into the folder would delete this one's temporary files as stale
        lock = hold_folder(out_dir)
    except FolderInUse as exc:
        raise ValueError(f"{out_dir}: {exc.strerror}: another degrade run is writing there") from None
    with lock:
        return _write_pairs(out_dir, tasks, jobs, progress)


def _write_pairs(out_dir: Path, tasks: list[PairTask], jobs: int | None, progress: bool) -> dict[str, int]:
    """:func:`write_pairs` once ``out_dir`` is this process's."""
    manifest_path = out_dir / MANIFEST
    done = _read_manifest(manifest_path)
    if any("settings" not in record for record in done.values()):
        raise ValueError(f"{out_dir} holds pairs from an older vidrestore, which did not record their settings; "
                         "write to another folder, or delete it to start over")
    others = sum(record["settings"] != tasks[0].settings for record in done.values())
    if others:
        raise ValueError(f"{out_dir} holds {others} pairs made with another --seed, --config or --set; write to "
                         "another folder, or delete it to start over")
    for stale in out_dir.rglob(".*.partial*"):  # temp files of a killed run (one run per folder)
        stale.unlink(missing_ok=True)
    pending = [t for t in tasks if t.key not in done or not (out_dir / done[t.key]["degraded"]).is_file()
               or _edited(t.source, done[t.key])]
    # Rewritten with just the good records of what is not redone, so that appends after a cut last
    # line stay clean and a redone pair (a source edited since) is listed once.
    redo = {t.key for t in pending}
    tmp = manifest_path.with_name("." + manifest_path.name + ".partial")
    tmp.write_text("".join(json.dumps(r) + "\n" for key, r in done.items() if key not in redo))
    os.replace(tmp, manifest_path)
    counts = {"done": 0, "skipped": len(tasks) - len(pending), "left_alone": 0, "failed": 0}
    jobs = jobs or os.cpu_count() or 1
    with open(manifest_path, "a") as manifest, tqdm(total=len(tasks), initial=counts["skipped"],
                                                     disable=not progress, desc="degrade", unit="file") as bar:
        for record in pool_map(run_task, pending, jobs):
            bar.update(1)
            if "left_alone" in record:  # not kept: it is looked at again (and left alone again) on a re-run
                counts["left_alone"] += 1
                log.warning("%s", record["left_alone"])
                continue
            manifest.write(json.dumps(record) + "\n")
            manifest.flush()
            if "error" in record:
                counts["failed"] += 1
                log.error("%s", record["error"])
            else:
                counts["done"] += 1
    _sort_manifest(manifest_path, [t.key for t in tasks])
    return counts


def _sort_manifest(path: Path, keys: list[str]) -> None:
    """Rewrite the manifest (atomically) in task order: workers finish in an order that depends on
    ``jobs`` and timing, and the same seed should give the same file."""
    rank = {key: index for index, key in enumerate(keys)}
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    records.sort(key=lambda record: (rank.get(record.get("key"), len(rank)), "error" in record))
    with atomic_output(path) as temporary:
        temporary.write_text("".join(json.dumps(record) + "\n" for record in records))
