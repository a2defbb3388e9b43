"""Shared pieces of the benchmarks: evaluation photos, classic baselines, noise estimation."""

from __future__ import annotations

import math
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from vidrestore.metrics import psnr, ssim

ROOT = Path(__file__).resolve().parents[1]


def photo_paths(folder: str | Path | None = None) -> list[Path]:
    """Validation photos: the demo corpus's val split (never trained on), else samples/."""
    from vidrestore.data import list_media

    folder = Path(folder) if folder else (ROOT / "data/corpus/val" if (ROOT / "data/corpus/val").is_dir() else ROOT / "samples")
    return [p for p in list_media(folder) if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff")]


def crops(paths: list[Path], *, size: int, per_image: int, seed: int, shrink: float = 0.5) -> list[np.ndarray]:
    """``per_image`` random ``size``² float32 RGB crops of each photo after resizing by ``shrink``
    (large wallpapers at full size are smoother than typical video frames); flat crops skipped."""
    from vidrestore.data import load_rgb_float

    rng = np.random.default_rng(seed)
    out = []
    for path in paths:
        image = load_rgb_float(path)
        if shrink != 1.0:
            image = cv2.resize(image, None, fx=shrink, fy=shrink, interpolation=cv2.INTER_AREA)
        h, w = image.shape[:2]
        kept, tries = 0, 0
        while kept < per_image and tries < 50 * per_image:
            tries += 1
            top, left = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
            crop = image[top : top + size, left : left + size]
            if crop.std() < 0.02:
                continue  # flat (sky, a graphic's fill): degradations can leave it bit-identical
            out.append(np.ascontiguousarray(crop))
            kept += 1
    return out


def estimate_sigma(image: np.ndarray) -> float:
    """Gaussian noise σ (in [0, 1] units) of a float RGB image, Immerkær's fast estimator on luma."""
    gray = image @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    kernel = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)
    response = cv2.filter2D(gray, -1, kernel)[1:-1, 1:-1]
    return float(math.sqrt(math.pi / 2) * np.abs(response).mean() / 6.0)


def to_u8(image: np.ndarray) -> np.ndarray:
    return np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)


def nlm(image: np.ndarray) -> np.ndarray:
    """OpenCV non-local means with h set from the estimated noise level."""
    sigma = estimate_sigma(image) * 255.0
    h = float(max(2.0, 0.8 * sigma))
    out = cv2.fastNlMeansDenoisingColored(to_u8(image), None, h, h, 7, 21)
    return out.astype(np.float32) / 255.0


def bm3d_denoise(image: np.ndarray) -> np.ndarray:
    """BM3D (PyPI ``bm3d``) on RGB with the estimated σ."""
    import bm3d

    sigma = max(estimate_sigma(image), 1.0 / 255.0)
    return np.clip(bm3d.bm3d_rgb(image, sigma), 0.0, 1.0).astype(np.float32)


def scores(restored: np.ndarray, clean: np.ndarray) -> tuple[float, float]:
    a = torch.from_numpy(np.ascontiguousarray(restored.transpose(2, 0, 1)))[None]
    b = torch.from_numpy(np.ascontiguousarray(clean.transpose(2, 0, 1)))[None]
    return float(psnr(a.clamp(0, 1), b)), float(ssim(a.clamp(0, 1), b))


def timed(fn, *args):
    started = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - started
