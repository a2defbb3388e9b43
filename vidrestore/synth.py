"""Synthetic clips with known motion, for samples, benchmarks and tests.

:func:`pan_clip` renders a slow camera pan over a still photo: each frame is a crop of the
photo translated by a smooth sub-pixel trajectory and shrunk to the output size, so the clean
reference and the true motion are known exactly.
"""

from __future__ import annotations

import cv2
import numpy as np

from vidrestore.data import pan_trajectory

__all__ = ["pan_clip"]


def pan_clip(
    image: np.ndarray, *, frames: int, width: int, height: int, speed: float = 1.5, seed: int = 0, zoom: float = 1.0
) -> tuple[list[np.ndarray], np.ndarray]:
    """Render ``frames`` float32 ``(height, width, 3)`` frames of a pan over ``image``
    (float32 RGB in [0, 1]). ``speed``: at most this many output pixels per frame.
    ``zoom`` > 1 crops a smaller region (shows finer detail). Returns ``(frames, offsets)``
    with offsets ``(frames, 2)`` (dy, dx) in output pixels."""
    rng = np.random.default_rng(seed)
    path = pan_trajectory(rng, frames, speed)
    h, w = image.shape[:2]
    factor = min(h / height, w / width) / zoom * 0.8  # source pixels per output pixel, leaving room to move
    reach = np.abs(path).max() * factor
    cx = rng.uniform(width * factor / 2 + reach, w - width * factor / 2 - reach)
    cy = rng.uniform(height * factor / 2 + reach, h - height * factor / 2 - reach)
    if factor > 1:  # pre-blur against aliasing, as a camera's optics and sensor would
        image = cv2.GaussianBlur(image, (0, 0), 0.5 * factor)
    out = []
    for dy, dx in path:
        # Output pixel (x, y) shows source point (left + (x + dx) * factor, top + (y + dy) * factor).
        left = cx - width * factor / 2 + dx * factor
        top = cy - height * factor / 2 + dy * factor
        matrix = np.float32([[factor, 0, left], [0, factor, top]])
        frame = cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_REFLECT_101)
        out.append(np.clip(frame, 0.0, 1.0))
    return out, path
