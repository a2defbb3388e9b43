"""Paired training data built on the fly from any folder of images and/or videos.

:class:`PairDataset` yields ``(degraded, clean)`` crops, :class:`ClipDataset` short clips of
consecutive frames (from videos, or a synthetic slow camera pan over a still photo). Every item
is a pure function of ``(seed, epoch, index)``: no global RNG is touched, so results are the
same with any number of DataLoader workers and in any order.

Sources that cannot be used are skipped with a warning naming them: unreadable headers and
sources smaller than ``patch_size`` when the dataset is built, files that fail to decode when an
item first draws them (that item draws another source, the same one every time, so a run and
its resume still see the same items).

Tensors are float32 ``(3, P, P)`` (clips ``(T, 3, P, P)``) in [0, 1].
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from vidrestore.degrade import DegradeConfig, Plan, apply_plan, apply_plan_clip, sample_plan
from vidrestore.degrade import mild_config as gentle_config
from vidrestore.errors import MediaError
from vidrestore.io.listing import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, list_media

__all__ = ["IMAGE_EXTENSIONS", "VIDEO_EXTENSIONS", "list_media", "PairDataset", "ClipDataset", "load_rgb_float"]

log = logging.getLogger(__name__)

_VIDEO_FRAMES_KEPT = 48  # consecutive frames decoded from each source video


def load_rgb(path: Path) -> np.ndarray:
    """Read an image as RGB ``(H, W, 3)`` uint8/uint16 (alpha dropped, gray replicated)."""
    from vidrestore.io import read_image

    pixels = read_image(path).pixels
    if pixels.shape[2] in (1, 2):
        pixels = np.repeat(pixels[:, :, :1], 3, axis=2)
    return np.ascontiguousarray(pixels[:, :, :3])


def load_rgb_float(path: Path) -> np.ndarray:
    """Read an image as float32 RGB ``(H, W, 3)`` in [0, 1] (alpha dropped, gray replicated)."""
    from vidrestore.io import to_float

    return to_float(load_rgb(path))


def _load_video_frames(path: Path, count: int) -> list[np.ndarray]:
    frames = []
    from vidrestore.io import VideoReader

    with VideoReader(path) as reader:
        for frame in reader:
            frames.append(frame.rgb)
            if len(frames) >= count:
                break
    return frames


def _header_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` from the file's header, without decoding pixels; raises :class:`MediaError`."""
    from vidrestore.io import image_size, probe

    if path.suffix.lower() in VIDEO_EXTENSIONS:
        info = probe(path)
        return info.width, info.height
    return image_size(path)


class _SourceCache:
    """Per-process LRU of decoded sources (a list of integer RGB frames each), bounded in bytes.

    Frames stay in their integer form (a quarter of float32's memory); crops become float."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.items: OrderedDict[Path, list[np.ndarray]] = OrderedDict()
        self.size = 0

    def get(self, path: Path) -> list[np.ndarray]:
        if path in self.items:
            self.items.move_to_end(path)
            return self.items[path]
        if path.suffix.lower() in VIDEO_EXTENSIONS:
            frames = _load_video_frames(path, _VIDEO_FRAMES_KEPT)
        else:
            frames = [load_rgb(path)]
        nbytes = sum(f.nbytes for f in frames)
        while self.items and self.size + nbytes > self.max_bytes:
            _, old = self.items.popitem(last=False)
            self.size -= sum(f.nbytes for f in old)
        self.items[path] = frames
        self.size += nbytes
        return frames


def _orientation_for(plan: Plan, orientation: tuple[bool, int]) -> tuple[bool, int]:
    """The flip and quarter turns to apply after ``plan``'s degradation. Analog colour bleed smears
    and shifts chroma horizontally to the right (tape), which a turn or a mirror would make
    vertical or leftward: with it, the drawn flip becomes upside down or nothing (the smear stays
    horizontal and rightward). Everything else looks the same in any orientation but motion
    blur, which is why crops are turned after their degradation at all."""
    if any(op.name == "chroma_bleed" for op in plan.ops):
        flip = orientation[0]
        return flip, 2 if flip else 0  # mirror + half turn = upside down
    return orientation


def _augment(patch: np.ndarray, flip: bool, rotations: int) -> np.ndarray:
    if flip:
        patch = patch[:, ::-1]
    return np.ascontiguousarray(np.rot90(patch, rotations))


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))


def _check_fraction(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")


def _check_range(name: str, bounds: tuple[float, float]) -> None:
    if not 0 < bounds[0] <= bounds[1]:
        raise ValueError(f"{name} must satisfy 0 < low <= high, got {bounds}")


class _MediaDataset(Dataset):
    def __init__(
        self,
        sources: str | Path | Sequence[str | Path],
        *,
        patch_size: int = 128,
        length: int = 10_000,
        seed: int = 0,
        config: DegradeConfig | None = None,
        scale_range: tuple[float, float] = (0.25, 1.0),
        mild_config: DegradeConfig | None = None,
        mild_fraction: float = 0.0,
        clean_fraction: float = 0.0,
        defocus_fraction: float = 0.0,
        defocus_sigma: tuple[float, float] = (0.8, 3.0),
        augment: bool = True,
        cache_bytes: int = 3 << 30,
    ) -> None:
        found = list_media(sources)
        if not found:
            raise ValueError(f"no images or videos found in {sources}")
        self.paths: list[Path] = []
        sides, skipped = [], []
        for path in found:
            try:
                width, height = _header_size(path)
            except MediaError as exc:
                skipped.append(f"{path}: {exc.reason}")
                continue
            if min(width, height) < patch_size:
                skipped.append(f"{path}: {width}x{height}, smaller than patch_size {patch_size}")
                continue
            self.paths.append(path)
            sides.append(min(width, height))
        for reason in skipped:
            log.warning("skipped %s", reason)
        if not self.paths:
            raise ValueError(f"no usable images or videos in {sources}: all {len(found)} are unreadable or "
                             f"smaller than patch_size {patch_size} (first: {skipped[0]})")
        if skipped:
            log.warning("skipped %d of %d sources in %s", len(skipped), len(found), sources)
        self.min_side = min(sides)  # of the kept sources, in pixels
        self._skipped = len(skipped)
        self._undecodable: set[Path] = set()
        self.patch_size = patch_size
        self.length = length
        self.seed = seed
        self.epoch = 0
        self.config = config or DegradeConfig()
        _check_range("scale_range", scale_range)
        self.scale_range = scale_range
        _check_fraction("mild_fraction", mild_fraction)
        self.mild_config = mild_config if mild_config is not None else gentle_config()
        self.mild_fraction = mild_fraction
        _check_fraction("clean_fraction", clean_fraction)
        self.clean_fraction = clean_fraction
        _check_fraction("defocus_fraction", defocus_fraction)
        _check_range("defocus_sigma", defocus_sigma)
        self.defocus_fraction = defocus_fraction
        self.defocus_sigma = defocus_sigma
        self.augment = augment
        self._cache = _SourceCache(cache_bytes)
        self._pid = os.getpid()

    def __len__(self) -> int:
        return self.length

    def set_epoch(self, epoch: int) -> None:
        """Draw different items for each epoch (still a pure function of seed, epoch, index)."""
        self.epoch = epoch

    def _rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, index])

    def _frames(self, rng: np.random.Generator) -> tuple[Path, list[np.ndarray]]:
        """A source drawn from ``rng`` and its decoded frames. A source that fails to decode is
        skipped (warned once per process) and another drawn from the same ``rng``: the item does
        not depend on which process met the bad file first."""
        if os.getpid() != self._pid:  # a forked worker starts with its own cache
            self._cache, self._pid = _SourceCache(self._cache.max_bytes), os.getpid()
        while len(self._undecodable) < len(self.paths):
            path = self.paths[int(rng.integers(len(self.paths)))]
            if path in self._undecodable:
                continue
            try:
                return path, self._cache.get(path)
            except MediaError as exc:
                self._undecodable.add(path)
                log.warning("skipped %s (%d of %d sources skipped)", exc,
                            self._skipped + len(self._undecodable), self._skipped + len(self.paths))
        raise ValueError(f"none of the {len(self.paths)} sources could be decoded ({self.paths[0]} and others)")

    def _crop_box(self, rng: np.random.Generator, height: int, width: int, margin: int = 0) -> tuple[int, int, int]:
        """(top, left, side) of a square region that is resized to ``patch_size``: ``side / patch``
        is the inverse of a scale drawn log-uniformly from ``scale_range`` (so the net sees
        detail at many scales, as video at various resolutions has). A scale above 1 enlarges a
        smaller region: a clean but soft target, like upscaled or gently defocused footage,
        which the net must leave soft rather than sharpen as if it were blurred."""
        lo, hi = self.scale_range
        scale = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        limit = min(height, width) - margin
        if limit < self.patch_size:
            raise ValueError(f"source smaller than patch_size {self.patch_size}")
        side = max(1, min(int(round(self.patch_size / scale)), limit))
        top = int(rng.integers(0, height - side - margin + 1))
        left = int(rng.integers(0, width - side - margin + 1))
        return top, left, side

    def _plan(self, rng: np.random.Generator) -> Plan:
        """The item's degradation plan: from ``mild_config`` with probability ``mild_fraction``,
        else from ``config``; with probability ``clean_fraction`` no operator at all (the input is
        the clean crop itself, so the net learns to leave good footage alone). No extra draw for
        a fraction that is 0: older streams replay."""
        seed = int(rng.integers(2**31 - 1))
        mild = self.mild_fraction > 0 and rng.random() < self.mild_fraction
        if self.clean_fraction > 0 and rng.random() < self.clean_fraction:
            return Plan(ops=(), seed=seed)
        return sample_plan(self.mild_config if mild else self.config, seed)

    def _defocus(self, rng: np.random.Generator, frames: list[np.ndarray]) -> list[np.ndarray]:
        """With probability ``defocus_fraction``, the clean frames themselves blurred (Gaussian,
        σ from ``defocus_sigma``): a target that is soft *and correct*, as a shallow depth of field
        is, so the net does not carve thin sharp lines out of every soft edge. Drawn after the
        plan, and not at all when the fraction is 0 (older streams replay)."""
        if not (self.defocus_fraction > 0 and rng.random() < self.defocus_fraction):
            return frames
        from vidrestore.degrade import ops

        sigma = float(rng.uniform(*self.defocus_sigma))
        size = 2 * int(np.ceil(3 * sigma)) + 1
        return [ops.gaussian_blur(f, kernel_size=size, sigma=sigma) for f in frames]

    def _shrink(self, region: np.ndarray) -> np.ndarray:
        """Integer or float region → float32 ``(patch, patch, 3)`` in [0, 1]: area averaging
        down, bicubic up (as video scalers enlarge)."""
        from vidrestore.io import to_float

        region = to_float(region) if region.dtype != np.float32 else region
        if region.shape[0] == self.patch_size:
            return np.ascontiguousarray(region)
        enlarge = region.shape[0] < self.patch_size
        interpolation = cv2.INTER_CUBIC if enlarge else cv2.INTER_AREA
        small = cv2.resize(region, (self.patch_size, self.patch_size), interpolation=interpolation)
        # Bicubic overshoots at edges; area weights do not sum to exactly 1 in float32.
        return np.clip(small, 0.0, 1.0, out=small)


class PairDataset(_MediaDataset):
    """``(degraded, clean)`` crops, each ``(3, patch_size, patch_size)`` float32 in [0, 1].

    Options (keyword): ``patch_size`` 128, ``length`` (items per epoch) 10 000, ``seed`` 0,
    ``config`` (:class:`DegradeConfig`, default its defaults), ``scale_range`` (0.25, 1.0; above
    1 enlarges, giving soft clean targets), ``mild_fraction`` (0: the share of items degraded from
    ``mild_config``, default :func:`~vidrestore.degrade.mild_config`), ``clean_fraction`` (0: the
    share of items left undegraded, input = target), ``defocus_fraction`` (0:
    the share of items whose clean target is itself blurred, σ from ``defocus_sigma`` (0.8, 3)),
    ``augment`` (flips/rotations) True, ``cache_bytes`` (decoded sources per process) 3 GiB.

    Item ``i`` of epoch ``e`` draws its source, crop, scale, flips and degradation plan from
    ``numpy.random.default_rng([seed, e, i])``. ``plan_for(i)`` returns the plan used and
    ``orientation_for(i)`` the flip and quarter turns, applied to both images after the
    degradation (so motion blur reaches the net in every direction).
    """

    def _item(self, index: int):
        """``(clean crop before flips, plan, (flip, rotations))`` of item ``index``."""
        rng = self._rng(index)
        _, frames = self._frames(rng)
        frame = frames[int(rng.integers(len(frames)))]
        top, left, side = self._crop_box(rng, frame.shape[0], frame.shape[1])
        clean = self._shrink(frame[top : top + side, left : left + side])
        orientation = (bool(rng.random() < 0.5), int(rng.integers(4))) if self.augment else (False, 0)
        plan = self._plan(rng)
        (clean,) = self._defocus(rng, [clean])
        return clean, plan, _orientation_for(plan, orientation)

    def plan_for(self, index: int):
        return self._item(index)[1]

    def orientation_for(self, index: int) -> tuple[bool, int]:
        """``(flip, quarter turns)`` applied to item ``index`` after its degradation."""
        return self._item(index)[2]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        clean, plan, orientation = self._item(index)
        # Flipped and turned after the degradation, so motion blur (drawn at 0–90° as the spec
        # says) reaches the net in every direction: a blur at 135° is one at 45° mirrored.
        degraded = apply_plan(clean, plan)
        return _to_tensor(_augment(degraded, *orientation)), _to_tensor(_augment(clean, *orientation))


def pan_trajectory(rng: np.random.Generator, frames: int, max_speed: float) -> np.ndarray:
    """``(frames, 2)`` sub-pixel (dy, dx) offsets of a slow, smoothly accelerating camera pan.

    Each axis starts at up to ``max_speed`` px/frame and accelerates by up to 5 % of it per
    frame, so the speed along an axis stays below ``max_speed * (1 + 0.05 * frames)``."""
    velocity = rng.uniform(-max_speed, max_speed, size=2)
    accel = rng.uniform(-max_speed, max_speed, size=2) * 0.05
    t = np.arange(frames, dtype=np.float64)[:, None]
    return velocity * t + 0.5 * accel * t * t


class ClipDataset(_MediaDataset):
    """Clips ``(degraded, clean)``, each ``(frames, 3, patch_size, patch_size)``.

    From a video: ``frames`` consecutive decoded frames. From a still image: a slow camera pan
    (sub-pixel translation up to ``max_speed`` px/frame at patch scale), so motion is known.
    The whole clip shares one degradation plan (per-frame noise, clip-level H.264).
    Other options as :class:`PairDataset`.
    """

    def __init__(
        self, sources: str | Path | Sequence[str | Path], *, frames: int = 5, max_speed: float = 2.0, **options
    ) -> None:
        super().__init__(sources, **options)
        self.frames = frames
        self.max_speed = max_speed

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = self._rng(index)
        name, source = self._frames(rng)
        if len(source) >= self.frames:
            start = int(rng.integers(len(source) - self.frames + 1))
            window = source[start : start + self.frames]
            top, left, side = self._crop_box(rng, window[0].shape[0], window[0].shape[1])
            clean = [self._shrink(f[top : top + side, left : left + side]) for f in window]
        else:
            from vidrestore.io import to_float

            image = source[0]
            path = pan_trajectory(rng, self.frames, self.max_speed)
            # Room for the pan in source pixels at the coarsest scale, on every side.
            margin = int(np.ceil(np.abs(path).max() / self.scale_range[0])) + 2
            try:
                top, left, side = self._crop_box(rng, image.shape[0], image.shape[1], margin=2 * margin)
            except ValueError as exc:
                raise ValueError(f"{name}: {image.shape[1]}x{image.shape[0]} has no room for a {self.frames}-frame "
                                 f"pan: it needs patch_size {self.patch_size} + {2 * margin} px a side") from exc
            window = to_float(image[top : top + side + 2 * margin, left : left + side + 2 * margin])
            factor = side / self.patch_size
            clean = []
            for dy, dx in path:
                matrix = np.float32([[1, 0, -margin - dx * factor], [0, 1, -margin - dy * factor]])
                shifted = cv2.warpAffine(
                    window, matrix, (side, side), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101
                )
                clean.append(self._shrink(np.clip(shifted, 0.0, 1.0)))
        orientation = (bool(rng.random() < 0.5), int(rng.integers(4))) if self.augment else (False, 0)
        plan = self._plan(rng)
        orientation = _orientation_for(plan, orientation)
        clean = self._defocus(rng, clean)
        degraded = apply_plan_clip(clean, plan)  # then flipped and turned, as PairDataset's
        return (torch.stack([_to_tensor(_augment(f, *orientation)) for f in degraded]),
                torch.stack([_to_tensor(_augment(f, *orientation)) for f in clean]))
