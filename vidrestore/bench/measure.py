"""Measurement helpers of the benchmarks: image scores, wall-clock timing, matmul peak, FLOPs.

Speed figures are only meaningful against a baseline measured in the same run on the same
machine (see DEVELOPERS.md), so the machine's own matmul peak is measured here too: the engine's
achieved FLOP/s is reported as a share of it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from vidrestore.metrics import psnr, ssim

__all__ = ["flops_per_megapixel", "matmul_peak", "scores", "timed"]

T = TypeVar("T")


def scores(restored: np.ndarray, clean: np.ndarray) -> tuple[float, float]:
    """``(PSNR dB, SSIM)`` of a float32 RGB ``(H, W, 3)`` result against its clean reference.

    The result is clamped to [0, 1] first, as it would be when saved.
    """
    a = torch.from_numpy(np.ascontiguousarray(restored.transpose(2, 0, 1)))[None]
    b = torch.from_numpy(np.ascontiguousarray(clean.transpose(2, 0, 1)))[None]
    return float(psnr(a.clamp(0, 1), b)), float(ssim(a.clamp(0, 1), b))


def timed(fn: Callable[..., T], *args: object) -> tuple[T, float]:
    """``fn(*args)`` and the wall-clock seconds it took."""
    started = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - started


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(dtype: torch.dtype, size: int = 2048, repeats: int = 10, device: str | torch.device = "cpu") -> float:
    """GFLOP/s of ``size``³ matrix products in ``dtype`` on ``device`` (all torch threads).

    The practical ceiling for a convolutional network on this machine: what the engine achieves
    is reported as a fraction of it, so the figure travels between machines.
    """
    device = torch.device(device)
    a = torch.randn(size, size, dtype=dtype, device=device)
    b = torch.randn(size, size, dtype=dtype, device=device)
    for _ in range(2):  # warm-up: kernel selection, thread pool start
        a @ b
    _synchronize(device)
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    _synchronize(device)
    return 2 * size**3 * repeats / (time.perf_counter() - started) / 1e9


def flops_per_megapixel(model: torch.nn.Module) -> float:
    """FLOPs the generator spends per output megapixel (torch's FLOP counter, 2 per multiply-add),
    counted on one float32 256×256 frame on the CPU."""
    x = torch.rand(1, 3, 256, 256)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return counter.get_total_flops() / (256 * 256) * 1e6
