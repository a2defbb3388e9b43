"""The benchmark's test set: crops and short clips of clean photos and videos, degraded with fixed seeds.

A photo gives crops and a slow panning clip; a clean video (footage the restorer never saw) gives
crops of its middle frame and a clip of its middle frames, fitted to the clip size. Everything is
a pure function of the folder and the seeds, so two runs (or two machines) score the methods on
the same pixels. Images and clips are degraded with the package's default
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
from vidrestore.io import VideoReader, probe, to_float
from vidrestore.io.images import image_size
from vidrestore.io.listing import VIDEO_EXTENSIONS, list_media
from vidrestore.synth import pan_clip

__all__ = ["ClipSet", "ImageSet", "clean_clip", "clip_set", "clip_sources", "crops", "default_photos", "fit_frame",
           "image_set", "load_still", "middle_frames", "photo_paths"]

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
    """The images and videos under ``folder`` (recursive, sorted): the test set's sources."""
    return list_media(folder)


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS


def middle_frames(path: Path, count: int) -> list[np.ndarray]:
    """``count`` consecutive frames from the middle of a video (fewer if it is shorter), float32
    RGB in [0, 1] — away from the fades and titles at either end. Raises :class:`MediaError`."""
    with VideoReader(path) as reader:
        start = max(0, (reader.info.frame_count - count) // 2)
        frames = []
        for frame in reader:
            if frame.index >= start:
                frames.append(to_float(frame.rgb))
                if len(frames) == count:
                    break
    return frames


def load_still(path: Path) -> np.ndarray:
    """A photo, or a video's middle frame, as float32 RGB in [0, 1]. Raises :class:`MediaError`."""
    if not is_video(path):
        return load_rgb_float(path)
    frames = middle_frames(path, 1)
    if not frames:
        raise MediaError(path, "no frame could be decoded")
    return frames[0]


def fit_frame(frame: np.ndarray, width: int, height: int) -> np.ndarray | None:
    """``frame`` scaled down (area) to cover ``width``×``height`` and cropped to its centre; None
    when it is smaller (it would have to be blown up)."""
    h, w = frame.shape[:2]
    scale = max(width / w, height / h)
    if scale > 1:
        return None
    if scale < 1:
        size = (max(width, round(w * scale)), max(height, round(h * scale)))
        frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
        h, w = frame.shape[:2]
    top, left = (h - height) // 2, (w - width) // 2
    return np.ascontiguousarray(frame[top : top + height, left : left + width])


def crops(paths: list[Path], *, size: int, per_image: int, seed: int, shrink: float = SHRINK) -> list[np.ndarray]:
    """``per_image`` random ``size``² float32 RGB crops of each photo after resizing by ``shrink``
    (large wallpapers at full size are smoother than typical video frames) and of each video's
    middle frame as it is; flat crops, pictures smaller than ``size`` after resizing and unreadable
    files are skipped (with a warning)."""
    rng = np.random.default_rng(seed)
    out = []
    for path in paths:
        try:
            image = load_still(path)
        except MediaError as exc:
            log.warning("%s; skipped", exc)
            continue
        factor = 1.0 if is_video(path) else shrink
        if factor != 1.0:
            image = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
        h, w = image.shape[:2]
        if min(h, w) < size:
            log.warning("%s: %d×%d after resizing by %g, smaller than a %d² crop; skipped", path, w, h, factor, size)
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
        if is_video(path):
            info = probe(path)
            return min(info.width, info.height) >= size
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
    """``count`` clips, each degraded as a clip with ``config`` (default: the default config):
    ``frames`` middle frames of each video first (filmed footage, fitted to ``width``×``height``:
    scaled down to cover it, centre cropped), then slow pans (:func:`~vidrestore.synth.pan_clip`,
    zoom 2) over the photos, JPEGs first (in a photo corpus those are camera pictures, the closest
    to filmed footage). Unreadable files, pictures smaller than the frame (they would be blown up)
    and videos shorter than ``frames`` are skipped with a warning, and the next source is used."""
    config = config or DegradeConfig()
    clean, degraded, plans, sources = [], [], [], []
    for path in clip_sources(paths):
        if len(sources) == count:
            break
        clip = clean_clip(path, frames=frames, width=width, height=height, seed=CLIP_PAN_SEED + len(sources))
        if clip is None:
            continue
        index = len(sources)
        sources.append(path)
        bad, plan = degrade_clip(clip, config, CLIP_DEGRADE_SEED + index)
        clean.append(clip)
        degraded.append(bad)
        plans.append(plan)
    if count > 0 and not sources:
        raise ValueError(f"no readable photo or video of at least {width}×{height} (videos: {frames} frames) among "
                         f"{len(paths)} for the clips; use a smaller clip size")
    return ClipSet(clean=clean, degraded=degraded, plans=plans, sources=sources)


def clip_sources(paths: list[Path]) -> list[Path]:
    """``paths`` in the order clips are made from them: videos (filmed footage) first, then JPEGs
    (in a photo corpus those are camera pictures), then the other pictures."""
    return sorted(paths, key=lambda p: (not is_video(p), p.suffix.lower() not in (".jpg", ".jpeg")))


def clean_clip(path: Path, *, frames: int, width: int, height: int, seed: int) -> list[np.ndarray] | None:
    """The clean clip a source gives: a video's middle frames fitted to ``width``×``height``, or a
    slow pan over a photo (seed ``seed``); None, with a warning, when it gives none (see
    :func:`clip_set`)."""
    try:
        if is_video(path):
            clip = [fit_frame(frame, width, height) for frame in middle_frames(path, frames)]
        else:
            image = load_rgb_float(path)
            if image.shape[0] < height or image.shape[1] < width:
                clip = [None]
            else:
                clip, _ = pan_clip(image, frames=frames, width=width, height=height, speed=1.5, seed=seed, zoom=2.0)
    except MediaError as exc:
        log.warning("%s; skipped", exc)
        return None
    if any(frame is None for frame in clip):
        log.warning("%s: smaller than a %d×%d clip frame; skipped", path, width, height)
        return None
    if len(clip) < frames:
        log.warning("%s: %d frames, fewer than a clip's %d; skipped", path, len(clip), frames)
        return None
    return clip
