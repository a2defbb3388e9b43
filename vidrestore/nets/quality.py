"""No-reference quality classifier: CNN features → fully connected → softmax over poor/medium/good.

:class:`QualityNet` maps a batch of RGB crops ``(N, 3, H, W)`` float32 in [0, 1] (any H, W ≥ 1)
to logits ``(N, 3)`` in the order of :data:`CLASSES` (poor, medium, good).

Front end: a fixed band-pass pyramid (differences of Gaussians at σ = ``sigmas``, full input
resolution, per colour channel) turned into log magnitudes, ``log(|band| + floor)``. Then learned
convolutions (stride-2 stages, BatchNorm, ReLU), global average pooling and one linear layer.
Why the fixed log-band front end: blur, noise and compression show as how energy is spread over
the fine bands *relative to* the coarse ones and to the picture's own contrast, and that
contrast varies by orders of magnitude between pictures. In the log domain a ratio is a
difference a convolution computes directly, and the flat-area noise floor (a low quantile of
|band|) is no longer drowned by edges. Measured on the labelled set of ``vidrestore quality
label`` (52 photos, 128² crops, 200 steps): the same learned stages on raw pixels stayed at
chance (train loss 1.10 = ln 3, with linear or log-energy pooling, several learning rates); on the
log bands they reached 0.71 train / 0.63 held-out accuracy in the same steps.

BatchNorm, not a per-sample norm: GroupNorm/InstanceNorm divide each picture's features by
their own energy, which erases the absolute noise and detail levels this classifier measures.

:func:`crop_boxes` and :func:`crop_stack` take crops at native resolution spread over a whole
image (the classifier never sees a downscaled picture: downscaling hides blur and noise), and
:func:`pooled_probabilities` averages the per-crop softmax, so an image that is sharp on one half
and blurred on the other gets probabilities between the two.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["CLASSES", "QualityNet", "log_bands", "crop_boxes", "crop_stack", "expected_score", "pooled_probabilities"]

CLASSES: tuple[str, ...] = ("poor", "medium", "good")


def _gaussian_kernel(sigma: float) -> torch.Tensor:
    radius = max(1, math.ceil(3.0 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-(t**2) / (2.0 * sigma * sigma))
    return kernel / kernel.sum()


def _blur(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian, reflect-padded (replicate where the image is smaller than the radius)."""
    channels, radius = x.shape[1], len(kernel) // 2
    mode = "reflect" if min(x.shape[-2:]) > radius else "replicate"
    k = kernel.to(x)
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode=mode), k.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    return F.conv2d(F.pad(x, (0, 0, radius, radius), mode=mode), k.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)


def log_bands(images: torch.Tensor, sigmas: tuple[float, ...], floor: float) -> torch.Tensor:
    """``(N, C, H, W)`` → ``(N, C * len(sigmas), H, W)``: ``log(|G_{σ(i-1)} x − G_{σi} x| + floor)``
    with ``G_{σ0} x = x`` (finest band first)."""
    previous, bands = images, []
    for sigma in sigmas:
        blurred = _blur(images, _gaussian_kernel(sigma))
        bands.append(torch.log((previous - blurred).abs() + floor))
        previous = blurred
    return torch.cat(bands, dim=1)


def _conv_block(in_channels: int, out_channels: int, stride: int) -> list[nn.Module]:
    return [
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    ]


class QualityNet(nn.Module):
    """``QualityNet(*, in_channels=3, sigmas=(0.7, 1.4, 2.8, 5.6), floor=1e-3,
    stage_channels=(32, 48, 64, 96), dropout=0.1)``.

    Log band-pass maps (``in_channels * len(sigmas)`` of them, full resolution), then one
    stage per ``stage_channels`` entry (stride-2 conv, stride-1 conv), global average pooling,
    dropout and a linear layer. Input ``(N, in_channels, H, W)`` in [0, 1]; output logits
    ``(N, num_classes)``.
    """

    def __init__(
        self,
        *,
        in_channels: int = 3,
        sigmas: tuple[float, ...] = (0.7, 1.4, 2.8, 5.6),
        floor: float = 1e-3,
        stage_channels: tuple[int, ...] = (32, 48, 64, 96),
        num_classes: int = len(CLASSES),
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if not stage_channels or not sigmas:
            raise ValueError("QualityNet needs at least one band and one stage")
        self.sigmas, self.floor = tuple(float(s) for s in sigmas), float(floor)
        layers: list[nn.Module] = []
        channels = in_channels * len(self.sigmas)
        for width in stage_channels:
            layers += _conv_block(channels, width, 2) + _conv_block(width, width, 1)
            channels = width
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4:
            raise ValueError(f"QualityNet takes (N, C, H, W) batches, got shape {tuple(images.shape)}")
        features = self.pool(self.features(log_bands(images, self.sigmas, self.floor))).flatten(1)
        return self.classifier(self.dropout(features))


def crop_boxes(height: int, width: int, *, crop_size: int, count: int) -> list[tuple[int, int]]:
    """``(top, left)`` of ``count`` (or fewer) ``crop_size``² crops spread evenly over the image.

    The crops sit on a ``rows × cols`` grid chosen to match the aspect ratio (``rows * cols ≥
    count``, the extra grid cells dropped from the middle out), first and last rows/columns
    touching the borders, so the whole width and height are sampled at native resolution. An
    image smaller than a crop in some dimension gets offset 0 there (the crop is padded).
    """
    if count < 1 or crop_size < 1:
        raise ValueError(f"count and crop_size must be >= 1, got {count}, {crop_size}")
    rows = max(1, round(math.sqrt(count * height / max(width, 1))))
    cols = max(1, math.ceil(count / rows))
    while rows * cols < count:
        rows += 1
    tops = np.linspace(0, max(0, height - crop_size), rows).round().astype(int)
    lefts = np.linspace(0, max(0, width - crop_size), cols).round().astype(int)
    grid = [(int(t), int(left)) for t in tops for left in lefts]
    grid = list(dict.fromkeys(grid))  # a small image collapses the grid: no duplicate crops
    if len(grid) > count:  # keep an even spread: take evenly spaced grid cells
        picks = np.linspace(0, len(grid) - 1, count).round().astype(int)
        grid = [grid[i] for i in picks]
    return grid


def crop_stack(image: np.ndarray, *, crop_size: int, count: int) -> torch.Tensor:
    """Crops of a float32 ``(H, W, 3)`` image in [0, 1] → ``(K, 3, crop_size, crop_size)``.

    Images smaller than ``crop_size`` are reflect-padded (never resized)."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.float32:
        raise ValueError(f"expected float32 (H, W, 3), got {image.dtype} {image.shape}")
    height, width = image.shape[:2]
    pad_h, pad_w = max(0, crop_size - height), max(0, crop_size - width)
    if pad_h or pad_w:
        mode = "reflect" if (pad_h < height and pad_w < width) else "edge"
        image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode=mode)
    crops = [
        image[top : top + crop_size, left : left + crop_size]
        for top, left in crop_boxes(height, width, crop_size=crop_size, count=count)
    ]
    return torch.from_numpy(np.ascontiguousarray(np.stack(crops).transpose(0, 3, 1, 2)))


@torch.no_grad()
def pooled_probabilities(model: nn.Module, crops: torch.Tensor, *, batch_size: int = 16) -> torch.Tensor:
    """Mean softmax over crops ``(K, 3, S, S)`` → probabilities ``(num_classes,)`` summing to 1."""
    if crops.ndim != 4 or len(crops) == 0:
        raise ValueError(f"expected a non-empty (K, 3, S, S) crop stack, got {tuple(crops.shape)}")
    device = next(model.parameters()).device
    parts = [torch.softmax(model(crops[i : i + batch_size].to(device)).float(), dim=1) for i in range(0, len(crops), batch_size)]
    return torch.cat(parts).mean(dim=0).cpu()


def expected_score(probabilities: torch.Tensor | np.ndarray) -> float:
    """Expected class value normalised to [0, 1]: poor = 0, medium = 0.5, good = 1."""
    p = torch.as_tensor(probabilities, dtype=torch.float64).reshape(-1)
    values = torch.linspace(0.0, 1.0, len(p), dtype=torch.float64)
    return float((p * values).sum() / p.sum())
