"""Conversions between stored pixel arrays and the canonical float form the networks use.

Stored form (what readers return, writers take): ``(H, W, C)`` numpy arrays, ``uint8`` or
``uint16`` (``float32`` in [0, 1] also accepted), C = 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA.
Canonical form: ``float32`` in [0, 1], RGB ``(H, W, 3)``; batches are ``torch`` tensors
``(N, 3, H, W)``. Integer ↔ float scaling uses the full range of the type (``/255``, ``/65535``),
so 8-bit → float → 8-bit is exact, and so is 16-bit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from collections.abc import Sequence

import numpy as np

if TYPE_CHECKING:  # torch is imported where batches are made: media I/O alone starts fast
    import torch

__all__ = [
    "from_batch",
    "from_float",
    "gray_to_rgb",
    "merge_alpha",
    "rgb_to_gray",
    "split_alpha",
    "to_batch",
    "to_float",
]

_INTEGER_MAXIMUM = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}

# BT.601 luma weights. They sum to exactly 1, so rgb_to_gray(gray_to_rgb(x)) == x.
_LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def to_float(pixels: np.ndarray) -> np.ndarray:
    """Scale ``uint8`` (/255) or ``uint16`` (/65535) pixels to ``float32`` in [0, 1]; any shape.

    ``float32``/``float64`` input is returned as ``float32`` unchanged in value.
    """
    if pixels.dtype in _INTEGER_MAXIMUM:
        return pixels.astype(np.float32) / np.float32(_INTEGER_MAXIMUM[pixels.dtype])
    if pixels.dtype.kind == "f":
        return pixels.astype(np.float32, copy=False)
    raise ValueError(f"to_float: expected uint8, uint16 or float pixels, got {pixels.dtype}")


def from_float(array: np.ndarray, dtype: type[np.generic] | np.dtype) -> np.ndarray:
    """Convert float pixels in [0, 1] to ``uint8`` or ``uint16``: clip to [0, 1], scale, round to nearest.

    Ties round to even; NaN becomes 0. Any shape.
    """
    dtype = np.dtype(dtype)
    if dtype not in _INTEGER_MAXIMUM:
        raise ValueError(f"from_float: target dtype must be uint8 or uint16, got {dtype}")
    scaled = np.clip(np.nan_to_num(array.astype(np.float32, copy=False), nan=0.0), 0.0, 1.0) * _INTEGER_MAXIMUM[dtype]
    return np.rint(scaled).astype(dtype)


def split_alpha(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Split ``(H, W, C)`` pixels into colour ``(H, W, C-1)`` and alpha ``(H, W, 1)`` when C is 2 or 4.

    For C = 1 or 3 there is no alpha: returns ``(pixels, None)``. Both parts keep the dtype.
    """
    _check_channels(pixels, (1, 2, 3, 4), "split_alpha")
    if pixels.shape[2] in (2, 4):
        return pixels[..., :-1], pixels[..., -1:]
    return pixels, None


def merge_alpha(color: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    """Inverse of :func:`split_alpha`: append ``alpha`` ``(H, W)`` or ``(H, W, 1)`` to ``color`` ``(H, W, 1|3)``."""
    _check_channels(color, (1, 3), "merge_alpha")
    if alpha is None:
        return color
    if alpha.shape[:2] != color.shape[:2] or alpha.dtype != color.dtype:
        raise ValueError(
            f"merge_alpha: alpha {alpha.shape} {alpha.dtype} does not match colour {color.shape} {color.dtype}"
        )
    return np.concatenate([color, alpha.reshape(*color.shape[:2], 1)], axis=2)


def gray_to_rgb(pixels: np.ndarray) -> np.ndarray:
    """Replicate gray ``(H, W, 1)`` into RGB ``(H, W, 3)``; same dtype."""
    _check_channels(pixels, (1,), "gray_to_rgb")
    return np.repeat(pixels, 3, axis=2)


def rgb_to_gray(pixels: np.ndarray) -> np.ndarray:
    """BT.601 luma ``0.299 R + 0.587 G + 0.114 B`` of RGB ``(H, W, 3)`` as ``(H, W, 1)``; same dtype.

    Integer input is rounded to nearest. The weights sum to 1, so this is the exact inverse of
    :func:`gray_to_rgb` on replicated-channel images.
    """
    _check_channels(pixels, (3,), "rgb_to_gray")
    luma = pixels.astype(np.float32) @ _LUMA_WEIGHTS
    if pixels.dtype.kind == "f":
        return luma[..., None].astype(pixels.dtype)
    maximum = np.iinfo(pixels.dtype).max
    return np.clip(np.rint(luma), 0, maximum).astype(pixels.dtype)[..., None]


def to_batch(images: Sequence[np.ndarray]) -> torch.Tensor:
    """Stack float RGB images ``(H, W, 3)`` (all one size, values in [0, 1]) into ``(N, 3, H, W)`` float32."""
    if len(images) == 0:
        raise ValueError("to_batch: no images given")
    for image in images:
        _check_channels(image, (3,), "to_batch")
        if image.dtype.kind != "f":
            raise ValueError(f"to_batch: expected float images in [0, 1] (see to_float), got {image.dtype}")
        if image.shape != images[0].shape:
            raise ValueError(f"to_batch: images differ in size: {images[0].shape} and {image.shape}")
    stacked = np.stack(images).astype(np.float32, copy=False)
    import torch

    return torch.from_numpy(stacked).permute(0, 3, 1, 2).contiguous()


def from_batch(batch: torch.Tensor) -> np.ndarray:
    """Inverse of :func:`to_batch`: ``(N, 3, H, W)`` tensor (any device/dtype) → ``(N, H, W, 3)`` float32 numpy."""
    if batch.ndim != 4 or batch.shape[1] != 3:
        raise ValueError(f"from_batch: expected a (N, 3, H, W) tensor, got shape {tuple(batch.shape)}")
    import torch

    return batch.detach().to(device="cpu", dtype=torch.float32).permute(0, 2, 3, 1).contiguous().numpy()


def _check_channels(pixels: np.ndarray, allowed: tuple[int, ...], caller: str) -> None:
    if pixels.ndim != 3 or pixels.shape[2] not in allowed:
        raise ValueError(f"{caller}: expected (H, W, C) pixels with C in {allowed}, got shape {pixels.shape}")
