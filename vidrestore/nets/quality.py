"""No-reference quality classifier: CNN features → fully connected → softmax over poor/medium/good.

:class:`QualityNet` maps a batch of RGB crops ``(N, 3, H, W)`` float32 in [0, 1] (any H, W ≥ 1)
to logits ``(N, 3)`` in the order of :data:`CLASSES` (poor, medium, good). It is small enough
for CPU (≈ 0.28 GMAC per 224² crop at the default widths) and keeps the finest detail: the stem
convolution runs at full input resolution (stride 1) on raw pixels, because blur, noise and
JPEG blocking live in the top octave that a strided first layer would alias away. Each stage
then halves the resolution (stride-2 conv, then a stride-1 conv), each conv followed by
BatchNorm and ReLU, then global average pooling and one linear layer. BatchNorm, not a
per-sample norm: GroupNorm/InstanceNorm divide each picture's features by their own energy, which
erases the absolute noise and detail levels this classifier exists to measure (with them a tiny
model did not learn the synthetic task of the tests at all; with BatchNorm it does in ~100
steps).

:func:`crop_boxes` and :func:`crop_stack` take crops at native resolution spread over a whole
image (the classifier never sees a downscaled picture: downscaling hides blur and noise), and
:func:`pooled_probabilities` averages the per-crop softmax, so an image that is sharp on one half
and blurred on the other gets probabilities between the two.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

__all__ = ["CLASSES", "QualityNet", "crop_boxes", "crop_stack", "expected_score", "pooled_probabilities"]

CLASSES: tuple[str, ...] = ("poor", "medium", "good")


def _conv_block(in_channels: int, out_channels: int, stride: int) -> list[nn.Module]:
    return [
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    ]


class QualityNet(nn.Module):
    """``QualityNet(*, in_channels=3, stem_channels=16, stage_channels=(24, 32, 64, 96, 128))``.

    The stem keeps full resolution; every stage halves it, so five stages take a 224² crop to
    7² before pooling. Input ``(N, in_channels, H, W)`` in [0, 1] (any size ≥ 1); output logits
    ``(N, num_classes)``.
    """

    def __init__(
        self,
        *,
        in_channels: int = 3,
        stem_channels: int = 16,
        stage_channels: tuple[int, ...] = (24, 32, 64, 96, 128),
        num_classes: int = len(CLASSES),
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if not stage_channels:
            raise ValueError("QualityNet needs at least one stage")
        layers: list[nn.Module] = _conv_block(in_channels, stem_channels, 1)
        channels = stem_channels
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
        # Centre the [0, 1] input so the first BatchNorm starts from a sensible range.
        features = self.pool(self.features(images * 2.0 - 1.0)).flatten(1)
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
