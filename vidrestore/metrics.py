"""Image and video quality metrics.

PSNR and SSIM on float tensors ``(N, C, H, W)`` in [0, 1] (SSIM: Wang et al. 2004, Gaussian
window 11, σ 1.5, on each channel, averaged). Values are per image, shape ``(N,)``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["psnr", "ssim", "occlusion_mask", "warping_errors", "temporal_flow_error"]


def psnr(restored: torch.Tensor, clean: torch.Tensor, *, data_range: float = 1.0) -> torch.Tensor:
    mse = (restored.float() - clean.float()).pow(2).flatten(1).mean(1)
    return 10.0 * torch.log10(data_range**2 / mse.clamp_min(1e-12))


def _gaussian_window(size: int, sigma: float, channels: int, device: torch.device) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32, device=device) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma * sigma))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def ssim(restored: torch.Tensor, clean: torch.Tensor, *, data_range: float = 1.0, window: int = 11) -> torch.Tensor:
    x, y = restored.float(), clean.float()
    channels = x.shape[1]
    w = _gaussian_window(window, 1.5, channels, x.device)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, w, groups=channels)

    mu_x, mu_y = blur(x), blur(y)
    sxx = blur(x * x) - mu_x**2
    syy = blur(y * y) - mu_y**2
    sxy = blur(x * y) - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * sxy + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2)
    return (num / den).flatten(1).mean(1)


# --------------------------------------------------------------------------- video
def _flow(reference: np.ndarray, other: np.ndarray) -> np.ndarray:
    from vidrestore.temporal import flow, luma_u8

    return flow(luma_u8(reference), luma_u8(other))


def occlusion_mask(forward: np.ndarray, backward: np.ndarray, *, tolerance: float = 1.0) -> np.ndarray:
    """Pixels whose forward flow, followed by the backward flow, returns within ``tolerance``
    px (Sundaram et al.'s consistency check): True where the motion is reliable."""
    from vidrestore.temporal import warp

    round_trip = forward + warp(backward, forward)
    return (round_trip**2).sum(axis=2) < tolerance**2 + 0.01 * ((forward**2).sum(axis=2) + (backward**2).sum(axis=2))


def warping_errors(outputs: list[np.ndarray], reference: list[np.ndarray]) -> "list[float]":
    """Per-frame warping error of ``outputs`` (float RGB in [0, 1]), t = 1..T-1: the mean squared
    difference between output ``t`` and output ``t-1`` warped to ``t`` by the optical flow of
    ``reference`` (the input, or a clean clip where one exists), over non-occluded pixels."""


    from vidrestore.temporal import warp

    errors = []
    for t in range(1, len(outputs)):
        forward = _flow(reference[t], reference[t - 1])  # t → t-1
        backward = _flow(reference[t - 1], reference[t])
        mask = occlusion_mask(forward, backward)
        warped = warp(outputs[t - 1], forward)
        squared = ((outputs[t] - warped) ** 2).mean(axis=2)
        errors.append(float(squared[mask].mean()) if mask.any() else 0.0)
    return errors


def temporal_flow_error(outputs: list[np.ndarray], clean: list[np.ndarray]) -> float:
    """tOF: mean end-point difference (px) between the motion of ``outputs`` and of ``clean``."""


    values = [
        float(np.sqrt(((_flow(outputs[t], outputs[t - 1]) - _flow(clean[t], clean[t - 1])) ** 2).sum(axis=2)).mean())
        for t in range(1, len(outputs))
    ]
    return float(np.mean(values)) if values else 0.0
