"""Degradation operators: small pure functions with explicit parameters.

Every function takes an image as float32 ``(H, W, 3)`` (or ``(H, W)``) in [0, 1] and returns a
new array of the same shape and dtype, clipped to [0, 1]. Random operators take an explicit
integer ``seed``; the same arguments always give the same bytes. Parameter *sampling* lives in
:mod:`vidrestore.degrade.sample`; this module only applies.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from vidrestore.io.convert import _LUMA_WEIGHTS  # BT.601, as rgb_to_gray

__all__ = [
    "RESAMPLE_MODES",
    "DOWN_MODES",
    "gaussian_kernel",
    "gaussian_blur",
    "motion_kernel",
    "motion_blur",
    "resample",
    "gaussian_noise",
    "poisson_noise",
    "salt_and_pepper",
    "jpeg",
    "sharpen",
    "chroma_bleed",
]

RESAMPLE_MODES = {"nearest": cv2.INTER_NEAREST, "bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC}
# Downsampling may also average pixel areas (what most scalers do); upsampling uses RESAMPLE_MODES.
DOWN_MODES = {**RESAMPLE_MODES, "area": cv2.INTER_AREA}


def _check(image: np.ndarray) -> np.ndarray:
    if image.dtype != np.float32:
        raise TypeError(f"degradation ops take float32 images in [0, 1], got {image.dtype}")
    if image.ndim not in (2, 3):
        raise ValueError(f"expected (H, W) or (H, W, C), got shape {image.shape}")
    return image


def _filter(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    # Reflect borders so a blurred constant stays exactly that constant up to float rounding.
    out = cv2.filter2D(_check(image), -1, kernel.astype(np.float32), borderType=cv2.BORDER_REFLECT_101)
    return np.clip(out, 0.0, 1.0, out=out)


def gaussian_kernel(kernel_size: int, sigma: float) -> np.ndarray:
    """Isotropic 2-D Gaussian kernel, ``(kernel_size, kernel_size)`` float64 summing to 1.

    ``kernel_size`` must be odd; ``sigma`` > 0 in pixels.
    """
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd integer, got {kernel_size}")
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    radius = kernel_size // 2
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    g = np.exp(-(x**2) / (2.0 * sigma * sigma))
    kernel = np.outer(g, g)
    return kernel / kernel.sum()


def gaussian_blur(image: np.ndarray, *, kernel_size: int, sigma: float) -> np.ndarray:
    """Blur with :func:`gaussian_kernel` (odd ``kernel_size``, e.g. 3–13)."""
    return _filter(image, gaussian_kernel(kernel_size, sigma))


def motion_kernel(length: float, angle: float) -> np.ndarray:
    """Linear motion-blur kernel summing to 1.

    A line segment of ``length`` pixels through the centre at ``angle`` degrees
    (counter-clockwise from the +x axis, image y pointing down), drawn with anti-aliasing by
    dense sampling. The kernel is square with odd side ``2*ceil(length/2)+1``; ``length`` 0 gives
    the 1×1 identity kernel.
    """
    if length < 0:
        raise ValueError(f"length must be >= 0, got {length}")
    if length < 1e-6:
        return np.ones((1, 1), dtype=np.float64)
    radius = int(math.ceil(length / 2.0))
    size = 2 * radius + 1
    kernel = np.zeros((size, size), dtype=np.float64)
    theta = math.radians(angle)
    dx, dy = math.cos(theta), -math.sin(theta)
    samples = max(int(length * 16), 2)
    for t in np.linspace(-length / 2.0, length / 2.0, samples):
        x, y = radius + t * dx, radius + t * dy
        x0, y0 = int(math.floor(x)), int(math.floor(y))
        fx, fy = x - x0, y - y0
        # Bilinear splat of one sample point.
        for yy, wy in ((y0, 1 - fy), (y0 + 1, fy)):
            for xx, wx in ((x0, 1 - fx), (x0 + 1, fx)):
                if 0 <= yy < size and 0 <= xx < size:
                    kernel[yy, xx] += wx * wy
    return kernel / kernel.sum()


def motion_blur(image: np.ndarray, *, length: float, angle: float) -> np.ndarray:
    """Blur along a line of ``length`` px (0–12) at ``angle`` degrees (0–90)."""
    return _filter(image, motion_kernel(length, angle))


def resample(image: np.ndarray, *, scale: float, down_mode: str = "bicubic", up_mode: str = "bicubic") -> np.ndarray:
    """Downsample by ``scale`` (> 1), then re-upscale to the original size.

    ``up_mode`` is one of ``nearest``, ``bilinear``, ``bicubic``; ``down_mode`` may also be
    ``area``. The small
    image is ``round(W / scale) × round(H / scale)`` (at least 1×1).
    """
    _check(image)
    if scale < 1.0:
        raise ValueError(f"scale must be >= 1, got {scale}")
    if down_mode not in DOWN_MODES:
        raise ValueError(f"unknown down_mode {down_mode!r}; choose from {sorted(DOWN_MODES)}")
    if up_mode not in RESAMPLE_MODES:
        raise ValueError(f"unknown up_mode {up_mode!r}; choose from {sorted(RESAMPLE_MODES)}")
    h, w = image.shape[:2]
    small_w, small_h = max(1, round(w / scale)), max(1, round(h / scale))
    small = cv2.resize(image, (small_w, small_h), interpolation=DOWN_MODES[down_mode])
    out = cv2.resize(small, (w, h), interpolation=RESAMPLE_MODES[up_mode])
    out = out.reshape(image.shape)
    return np.clip(out, 0.0, 1.0, out=out)


def _noise_shape(image: np.ndarray, gray: bool) -> tuple[int, ...]:
    return image.shape[:2] + (1,) * (image.ndim - 2) if gray else image.shape


def gaussian_noise(image: np.ndarray, *, mean: float, sigma: float, seed: int, gray: bool = False) -> np.ndarray:
    """Add N(``mean``, ``sigma``²) noise (both in [0, 1] units). ``gray`` shares it across channels."""
    _check(image)
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(_noise_shape(image, gray), dtype=np.float32)
    out = image + (np.float32(sigma) * noise + np.float32(mean))
    return np.clip(out, 0.0, 1.0, out=out)


def poisson_noise(image: np.ndarray, *, lam: float, seed: int, gray: bool = False) -> np.ndarray:
    """Shot noise: ``Poisson(image * lam) / lam``; ``lam`` photons at full scale (smaller is noisier).

    With ``gray``, the noise is drawn on luma and added to every channel.
    """
    _check(image)
    if lam <= 0:
        raise ValueError(f"lam must be > 0, got {lam}")
    rng = np.random.default_rng(seed)
    if gray and image.ndim == 3:
        luma = image @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        noisy = rng.poisson(luma * lam).astype(np.float32) / np.float32(lam)
        out = image + (noisy - luma)[..., None]
    else:
        out = rng.poisson(image * lam).astype(np.float32) / np.float32(lam)
    return np.clip(out, 0.0, 1.0, out=out)


def salt_and_pepper(image: np.ndarray, *, snr: float, seed: int, salt_ratio: float = 0.5) -> np.ndarray:
    """Impulse noise. ``snr`` is the fraction of pixels left intact (e.g. 0.95–1.0).

    Each corrupted pixel becomes white (probability ``salt_ratio``) or black, in all channels.
    """
    _check(image)
    if not 0.0 <= snr <= 1.0:
        raise ValueError(f"snr must be in [0, 1], got {snr}")
    rng = np.random.default_rng(seed)
    h, w = image.shape[:2]
    u = rng.random((h, w), dtype=np.float32)
    corrupt = u >= snr
    salt = corrupt & (rng.random((h, w), dtype=np.float32) < salt_ratio)
    out = image.copy()
    out[corrupt] = 0.0
    out[salt] = 1.0
    return out


def jpeg(image: np.ndarray, *, quality: int) -> np.ndarray:
    """JPEG round trip at ``quality`` (1–100) with 4:2:0 chroma, OpenCV's libjpeg."""
    _check(image)
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be in [1, 100], got {quality}")
    u8 = np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)
    bgr = cv2.cvtColor(u8, cv2.COLOR_RGB2BGR) if u8.ndim == 3 else u8
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    dec = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if dec.ndim == 3:
        dec = cv2.cvtColor(dec, cv2.COLOR_BGR2RGB)
    return dec.astype(np.float32) * np.float32(1.0 / 255.0)


def sharpen(image: np.ndarray, *, amount: float, sigma: float) -> np.ndarray:
    """Unsharp mask: ``image + amount * (image - blur(image, sigma))`` — the halos and ringing of
    over-sharpened broadcast, camcorder and upscaled video."""
    _check(image)
    if amount < 0 or sigma <= 0:
        raise ValueError(f"need amount >= 0 and sigma > 0, got {amount}, {sigma}")
    blurred = cv2.GaussianBlur(image, (0, 0), sigma, borderType=cv2.BORDER_REFLECT_101).reshape(image.shape)
    out = image + np.float32(amount) * (image - blurred)
    return np.clip(out, 0.0, 1.0, out=out)


def _rgb_to_ycc() -> np.ndarray:
    """Full-range BT.601 RGB → YCbCr (JPEG's) from the luma weights the package uses everywhere:
    Cb = (B − Y) / (2 (1 − w_B)), Cr = (R − Y) / (2 (1 − w_R))."""
    luma = np.asarray(_LUMA_WEIGHTS, np.float64)
    blue, red = np.eye(3)[2] - luma, np.eye(3)[0] - luma
    return np.stack([luma, blue / (2 * (1 - luma[2])), red / (2 * (1 - luma[0]))])


_RGB_TO_YCC_F64 = _rgb_to_ycc()
_RGB_TO_YCC = _RGB_TO_YCC_F64.astype(np.float32)
_YCC_TO_RGB = np.linalg.inv(_RGB_TO_YCC_F64).astype(np.float32)


def chroma_bleed(image: np.ndarray, *, horizontal: int, vertical: int, shift: float) -> np.ndarray:
    """Low-resolution, misregistered colour: the chroma planes are averaged down by ``horizontal``
    × ``vertical``, upsampled bilinearly and shifted ``shift`` px to the right — analog tape
    (VHS keeps ~1/4 of the luma's horizontal colour detail) and cheap 4:2:0/4:1:1 chains."""
    _check(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"chroma_bleed needs an RGB image, got shape {image.shape}")
    if horizontal < 1 or vertical < 1:
        raise ValueError(f"subsampling factors must be >= 1, got {horizontal}x{vertical}")
    h, w = image.shape[:2]
    ycc = image @ _RGB_TO_YCC.T
    chroma = np.ascontiguousarray(ycc[..., 1:])
    small = cv2.resize(chroma, (max(1, round(w / horizontal)), max(1, round(h / vertical))), interpolation=cv2.INTER_AREA)
    chroma = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR).reshape(h, w, 2)
    if shift:
        matrix = np.float32([[1, 0, shift], [0, 1, 0]])
        chroma = cv2.warpAffine(chroma, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        chroma = chroma.reshape(h, w, 2)
    ycc[..., 1:] = chroma
    out = np.ascontiguousarray(ycc @ _YCC_TO_RGB.T, dtype=np.float32)
    return np.clip(out, 0.0, 1.0, out=out)
