"""The benchmark's test set: crops and short panning clips of clean photos, degraded with fixed seeds.

Everything is a pure function of the photo folder and the seeds, so two runs (or two machines)
score the methods on the same pixels. Images and clips are degraded with the package's default
:class:`~vidrestore.degrade.DegradeConfig` — the degradations the model is trained to undo;
clips through :func:`~vidrestore.degrade.degrade_clip` (fresh noise per frame, clip-level H.264).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from vidrestore.data import load_rgb_float
from vidrestore.degrade import DegradeConfig, Plan, degrade, degrade_clip
from vidrestore.errors import MediaError
from vidrestore.io.images import image_size
from vidrestore.io.listing import IMAGE_EXTENSIONS, list_media
from vidrestore.synth import pan_clip

__all__ = ["ClipSet", "ImageSet", "clip_set", "crops", "default_photos", "image_set", "photo_paths"]

log = logging.getLogger(__name__)

IMAGE_DEGRADE_SEED = 10_000  # crop i is degraded with seed IMAGE_DEGRADE_SEED + i
CLIP_PAN_SEED = 100  # clip i pans with seed CLIP_PAN_SEED + i
CLIP_DEGRADE_SEED = 500  # and is degraded with seed CLIP_DEGRADE_SEED + i
SHRINK = 0.5  # photos are halved before cropping (see crops())
FLAT_STD = 0.02  # crops flatter than this are skipped: degradations can leave them bit-identical


def default_photos(root: str | Path = ".", split: str = "val") -> Path:
    """The benchmarks' default photos under ``root``: the curated ``split`` (photos only:
    ``vidrestore curate data/corpus/val data/curated/val``) when it exists, else the corpus's raw
    ``split`` (which also holds the packages' graphics and icons)."""
    curated, raw = Path(root) / "data/curated" / split, Path(root) / "data/corpus" / split
    return raw if raw.is_dir() and not curated.is_dir() else curated


def photo_paths(folder: str | Path) -> list[Path]:
    """The still images under ``folder`` (recursive, sorted); videos are ignored."""
    return [p for p in list_media(folder) if p.suffix.lower() in IMAGE_EXTENSIONS]


def crops(paths: list[Path], *, size: int, per_image: int, seed: int, shrink: float = SHRINK) -> list[np.ndarray]:
    """``per_image`` random ``size``² float32 RGB crops of each photo after resizing by ``shrink``
    (large wallpapers at full size are smoother than typical video frames); flat crops, photos
    smaller than ``size`` after resizing and unreadable photos are skipped (with a warning)."""
    rng = np.random.default_rng(seed)
    out = []
    for path in paths:
        try:
            image = load_rgb_float(path)
        except MediaError as exc:
            log.warning("%s; skipped", exc)
            continue
        if shrink != 1.0:
            image = cv2.resize(image, None, fx=shrink, fy=shrink, interpolation=cv2.INTER_AREA)
        h, w = image.shape[:2]
        if min(h, w) < size:
            log.warning("%s: %d×%d after resizing by %g, smaller than a %d² crop; skipped", path, w, h, shrink, size)
            continue
        kept, tries = 0, 0
        while kept < per_image and tries < 50 * per_image:
            tries += 1
            top, left = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
            crop = image[top : top + size, left : left + size]
            if crop.std() < FLAT_STD:
                continue
            out.append(np.ascontiguousarray(crop))
            kept += 1
    return out


@dataclass
class ImageSet:
    """Same-size crops: ``clean[i]`` and ``degraded[i]`` float32 ``(size, size, 3)`` in [0, 1]."""

    clean: list[np.ndarray]
    degraded: list[np.ndarray]
    plans: list[Plan]

    @property
    def megapixels(self) -> float:
        return sum(image.shape[0] * image.shape[1] for image in self.clean) / 1e6


@dataclass
class ClipSet:
    """Clips: ``clean[i]`` and ``degraded[i]`` are lists of float32 ``(height, width, 3)`` frames."""

    clean: list[list[np.ndarray]]
    degraded: list[list[np.ndarray]]
    plans: list[Plan]
    sources: list[Path] = field(default_factory=list)

    @property
    def frames(self) -> int:
        return sum(len(clip) for clip in self.clean)

    @property
    def megapixels(self) -> float:
        return sum(frame.shape[0] * frame.shape[1] for clip in self.clean for frame in clip) / 1e6


def _fits(path: Path, size: int) -> bool:
    """Whether ``path`` holds a ``size``² crop after the half-size shrink; a file whose header
    cannot be read counts as fitting, so that :func:`crops` reports it when loading."""
    try:
        return min(image_size(path)) * SHRINK >= size
    except MediaError:
        return True


def image_set(
    paths: list[Path], *, count: int, size: int, seed: int, config: DegradeConfig | None = None,
    degrade_seed: int = IMAGE_DEGRADE_SEED,
) -> ImageSet:
    """``count`` crops spread evenly over the photos' crops (seed ``seed``), each degraded with
    ``config`` (default: the default config) and seed ``degrade_seed + i``. Photos too
    small for a crop are skipped; the others then give more crops each, so ``count`` is met when
    the usable photos allow it."""
    usable = [p for p in paths if _fits(p, size)]
    per_image = max(1, math.ceil(count / max(1, len(usable))))
    candidates = crops(usable or paths, size=size, per_image=per_image, seed=seed)
    if not candidates:
        raise ValueError(f"no usable {size}² crops in {len(paths)} photos (too small or flat); use smaller crops")
    picks = np.unique(np.linspace(0, len(candidates) - 1, min(count, len(candidates))).round().astype(int))
    clean = [candidates[i] for i in picks]
    config = config or DegradeConfig()
    pairs = [degrade(image, config, degrade_seed + i) for i, image in enumerate(clean)]
    return ImageSet(clean=clean, degraded=[p[0] for p in pairs], plans=[p[1] for p in pairs])


def clip_set(
    paths: list[Path], *, count: int, frames: int, width: int, height: int, config: DegradeConfig | None = None
) -> ClipSet:
    """``count`` slow pans (:func:`~vidrestore.synth.pan_clip`, zoom 2) over the photos, JPEGs
    first (in a photo corpus those are camera pictures, the closest to filmed footage), each
    degraded as a clip with ``config`` (default: the default config). Unreadable photos and
    photos smaller than the ``width``×``height`` frame (they would be blown up) are skipped with
    a warning, and the next photo is used."""
    config = config or DegradeConfig()
    clean, degraded, plans, sources = [], [], [], []
    for path in sorted(paths, key=lambda p: p.suffix.lower() not in (".jpg", ".jpeg")):
        if len(sources) == count:
            break
        try:
            image = load_rgb_float(path)
        except MediaError as exc:
            log.warning("%s; skipped", exc)
            continue
        if image.shape[0] < height or image.shape[1] < width:
            log.warning("%s: %d×%d, smaller than a %d×%d clip frame; skipped", path, image.shape[1], image.shape[0],
                        width, height)
            continue
        index = len(sources)
        sources.append(path)
        clip, _ = pan_clip(image, frames=frames, width=width, height=height, speed=1.5,
                           seed=CLIP_PAN_SEED + index, zoom=2.0)
        bad, plan = degrade_clip(clip, config, CLIP_DEGRADE_SEED + index)
        clean.append(clip)
        degraded.append(bad)
        plans.append(plan)
    if count > 0 and not sources:
        raise ValueError(f"no readable photo of at least {width}×{height} among {len(paths)} for the clips; "
                         "use a smaller clip size")
    return ClipSet(clean=clean, degraded=degraded, plans=plans, sources=sources)
