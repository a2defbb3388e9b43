"""Temporal consistency: fuse each restored frame with its motion-compensated neighbours.

Per-frame restoration flickers: the generator's output for a pixel varies a little from frame
to frame even where the scene does not. For output frame ``n`` this stage takes the *restored*
frames ``n-k..n+k`` (k = ``radius``), warps each neighbour onto frame ``n`` with dense optical
flow (OpenCV DIS, computed on the restored frames' luma, which is cleaner than the degraded
input's), and averages them with per-pixel weights that fall to zero where the warp is
unreliable (occlusions, flow errors: the warped neighbour disagrees with frame ``n`` by more
than ``tolerance``) and across scene cuts. Frame ``n`` itself always has weight 1. A neighbour
brighter or darker as a whole (a fade, a flash) is first scaled to frame ``n``'s brightness, so
it still fuses and lends none of its own brightness.

Output ``n`` depends only on input frames ``n-k..n+k`` — never on earlier outputs — so a
VapourSynth filter can request any frame alone, in any order, and get the same bytes.

Images are float32 ``(H, W, 3)`` in [0, 1] throughout.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from vidrestore import checks

__all__ = ["TemporalConfig", "flow", "warp", "luma_u8", "is_scene_cut", "fuse_window", "temporal_error"]


@dataclass(frozen=True)
class TemporalConfig:
    """``radius``: neighbours on each side; ``strength`` in [0, 1] scales their weights
    (0 = off); ``tolerance``: the local mean absolute difference (in [0, 1] units) at which a
    warped neighbour's weight has fallen to ``exp(-1)``; ``flow_max_side``: optical flow is
    computed on frames shrunk to at most this many pixels on the long side (then scaled back);
    ``cut_threshold``: mean absolute difference of 64×36 thumbnails above which two consecutive
    frames are taken as a scene cut; ``cut_correlation``: they are also a cut when their luma
    thumbnails' best correlation over shifts of up to a tenth of the frame stays below this (a
    cut between two dark or low-contrast shots, which differ by little in absolute terms; 0:
    off); ``adaptive``: the tolerance also tightens to this many times
    a frame pair's median disagreement, not below 0.012 (0: the fixed ``tolerance`` alone; it keeps
    a faint object the flow missed from being averaged away, for a slightly less smooth result)."""

    radius: int = 2
    strength: float = 1.0
    tolerance: float = 0.035
    flow_max_side: int = 960
    cut_threshold: float = 0.15
    cut_correlation: float = 0.3
    adaptive: float = 4.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "radius", checks.integer(self.radius, "radius", 0))
        object.__setattr__(self, "strength", checks.real(self.strength, "strength", 0.0, 1.0))
        if not self.adaptive >= 0.0:
            raise ValueError("adaptive must be >= 0")
        if not 0.0 <= self.cut_correlation <= 1.0:
            raise ValueError("cut_correlation must be in [0, 1] (0: off)")


_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # BT.601


def luma_u8(image: np.ndarray) -> np.ndarray:
    """BT.601 luma of a float RGB frame as uint8 ``(H, W)``."""
    gray = image @ _LUMA
    return np.clip(gray * 255.0 + 0.5, 0, 255).astype(np.uint8)


# DIS's fast preset starts at 1/4 scale with 8-px patches: it refuses frames under 12 px on a
# side and reads out of bounds (a segfault) on thin ones such as 24×200, so smaller sides are
# edge-padded to 32 first (checked on every shape from 32 px to 1920 px in both orientations).
_MIN_FLOW_SIDE = 32


def _dis_flow(reference: np.ndarray, other: np.ndarray) -> np.ndarray:
    h, w = reference.shape
    pad_y, pad_x = max(0, _MIN_FLOW_SIDE - h), max(0, _MIN_FLOW_SIDE - w)
    if pad_y or pad_x:
        reference, other = (cv2.copyMakeBorder(a, 0, pad_y, 0, pad_x, cv2.BORDER_REPLICATE) for a in (reference, other))
    # A fresh DIS object per call (≈ 7 µs): a reused one is not thread-safe, and its result
    # depends on what it computed before — after other frame sizes, the same pair gave a flow
    # 0.5 px different, so a frame's output depended on which frames its thread had restored.
    field = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST).calc(reference, other, None)
    return field[:h, :w]


def flow(reference: np.ndarray, other: np.ndarray, *, max_side: int = 960) -> np.ndarray:
    """Dense flow ``(H, W, 2)`` float32 (dx, dy) such that ``reference(p) ≈ other(p + flow(p))``.

    ``reference`` and ``other`` are uint8 luma ``(H, W)``, any size from 1×1. Large frames are
    shrunk for speed.
    """
    h, w = reference.shape
    scale = min(1.0, max_side / max(h, w))
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        ref_small = cv2.resize(reference, size, interpolation=cv2.INTER_AREA)
        other_small = cv2.resize(other, size, interpolation=cv2.INTER_AREA)
        small = _dis_flow(ref_small, other_small)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR) / np.float32(scale)
    return _dis_flow(reference, other)


def warp(image: np.ndarray, field: np.ndarray) -> np.ndarray:
    """Sample ``image`` at ``p + field(p)`` (bilinear, edge-replicated)."""
    h, w = field.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(image, grid_x + field[..., 0], grid_y + field[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _thumbnail(image: np.ndarray) -> np.ndarray:
    return cv2.resize(image, (64, 36), interpolation=cv2.INTER_AREA)


# Thumbnails with less contrast than this (standard deviation of luma, about 2.5 levels: a black
# or flat frame, where only noise is left to correlate) are not compared by correlation.
_CUT_MIN_CONTRAST = 0.01


def is_scene_cut(previous: np.ndarray, current: np.ndarray, *, threshold: float = 0.15,
                 correlation: float = 0.3) -> bool:
    """Whether ``current`` starts a new shot after ``previous`` (float RGB frames): their 64×36
    thumbnails differ by more than ``threshold`` on average, or — both having some contrast —
    the best normalised correlation of their luma over shifts of up to a tenth of the frame (so a
    fast pan still matches) is below ``correlation``."""
    small_previous, small_current = (_thumbnail(np.asarray(f, dtype=np.float32)) for f in (previous, current))
    if float(np.abs(small_previous - small_current).mean()) > threshold:
        return True
    if correlation <= 0:
        return False
    # Luma at 32×18: each pixel averages 1/576 of the frame, so noise (which does not correlate
    # from frame to frame) stays under the contrast floor even on small, noisy frames.
    luma_previous, luma_current = (cv2.resize(small @ _LUMA, (32, 18), interpolation=cv2.INTER_AREA)
                                   for small in (small_previous, small_current))
    template = np.ascontiguousarray(luma_current[2:-2, 3:-3])  # shifts of ±3 × ±2 pixels: a tenth of the frame
    if min(float(luma_previous.std()), float(template.std())) < _CUT_MIN_CONTRAST:
        return False
    match = cv2.matchTemplate(np.ascontiguousarray(luma_previous), template, cv2.TM_CCOEFF_NORMED)
    return float(np.nanmax(match)) < correlation


# A neighbour's brightness is matched to the centre's when their thumbnails' luma ratio (the
# median over pixels, so a moving object does not sway it) is further than this from 1.
_GAIN_DEADBAND = 0.02


def _luma_thumbnail(image: np.ndarray) -> np.ndarray:
    return _thumbnail(image) @ _LUMA


def _match_brightness(warped: np.ndarray, small_center: np.ndarray) -> np.ndarray | None:
    """``warped`` scaled by the gain that maps its brightness onto the centre's (``small_center``:
    its :func:`_luma_thumbnail`) — a fade, a flash; ``warped`` itself when they are within
    ``_GAIN_DEADBAND`` (almost always) or both are nearly black; None when only one of them is
    (the end of a fade to black: no gain maps one onto the other, and the neighbour would pull
    the centre's brightness)."""
    small_warped = _luma_thumbnail(warped)
    lit_warped, lit_center = small_warped > 0.02, small_center > 0.02  # ratios of near-black are noise
    valid = lit_warped & lit_center
    if valid.sum() < small_warped.size // 4:
        quarter = small_warped.size // 4
        return warped if (lit_warped.sum() < quarter) == (lit_center.sum() < quarter) else None
    gain = float(np.median(small_center[valid] / small_warped[valid]))
    if abs(gain - 1.0) <= _GAIN_DEADBAND:
        return warped
    return warped * np.float32(min(max(gain, 0.25), 4.0))


def _reliability(warped: np.ndarray, center: np.ndarray, tolerance: float, adaptive: float) -> np.ndarray:
    """Per-pixel weight in (0, 1]: 1 where the warped neighbour agrees with the centre.

    The tolerance tightens to a few times the pair's typical disagreement (the median over the
    frame: what noise and small flow errors leave where the warp is right), so a region that
    disagrees by less than ``tolerance`` but far more than the rest — a faint object the flow
    missed — is not averaged away."""
    difference = np.abs(warped - center).mean(axis=2)
    difference = cv2.blur(difference, (7, 7))
    if adaptive > 0:
        typical = float(np.median(difference[::4, ::4]))
        tolerance = min(tolerance, max(_TOLERANCE_FLOOR, adaptive * typical))
    return np.exp(-((difference / tolerance) ** 2))


_TOLERANCE_FLOOR = 0.012  # the adaptive tolerance never goes below this


def fuse_window(
    frames: Sequence[np.ndarray],
    center: int,
    *,
    cuts: Sequence[bool] | None = None,
    config: TemporalConfig = TemporalConfig(),
    lumas: Sequence[np.ndarray] | None = None,
    fields: dict[int, np.ndarray] | None = None,
) -> np.ndarray:
    """Fuse ``frames[center]`` with the other frames of the window.

    ``frames``: consecutive restored frames; ``cuts[i]`` is True when a scene cut lies between
    ``frames[i]`` and ``frames[i + 1]`` (neighbours across a cut are ignored). ``lumas``
    optionally gives precomputed :func:`luma_u8` of the frames; ``fields``, if given, receives
    the flow from the centre to each neighbour used, keyed by window index.
    """
    reference = frames[center]
    if config.strength <= 0 or len(frames) == 1:
        return reference
    lumas = lumas if lumas is not None else [luma_u8(f) for f in frames]
    cuts = cuts if cuts is not None else [False] * (len(frames) - 1)
    total = reference.astype(np.float32, copy=True)
    small_reference = _luma_thumbnail(reference)  # once per window, for every neighbour's brightness
    weight_sum = np.ones(reference.shape[:2], dtype=np.float32)
    for index, frame in enumerate(frames):
        if index == center or abs(index - center) > config.radius:
            continue
        low, high = sorted((index, center))
        if any(cuts[low:high]):
            continue
        field = flow(lumas[center], lumas[index], max_side=config.flow_max_side)
        if fields is not None:
            fields[index] = field
        warped = _match_brightness(warp(frame, field), small_reference)
        if warped is None:
            continue
        weight = config.strength * _reliability(warped, reference, config.tolerance, config.adaptive)
        total += warped * weight[..., None]
        weight_sum += weight
    return total / weight_sum[..., None]


def temporal_error(previous_output: np.ndarray, output: np.ndarray, field: np.ndarray) -> float:
    """Mean absolute difference (8-bit levels) between ``output`` and ``previous_output``
    warped onto it by ``field`` (flow from ``output`` to ``previous_output``), over pixels whose
    warp is reliable (difference below 0.1): the flicker left after motion is undone."""
    warped = _match_brightness(warp(previous_output, field), _luma_thumbnail(output))  # a fade is not flicker
    if warped is None:
        return 0.0
    difference = np.abs(warped - output).mean(axis=2)
    mask = difference < 0.1
    if not mask.any():
        return 0.0
    return float(difference[mask].mean() * 255.0)
