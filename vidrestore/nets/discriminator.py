"""Conditional patch discriminator D(candidate, degraded) → per-patch realness logits.

pix2pix's PatchGAN: the candidate (clean or generated) and the degraded input are concatenated,
so D judges whether the candidate is a plausible restoration *of this input*. Spectral norm on
every convolution keeps the adversarial game stable at the small GAN weight the spec uses.
Output: logits ``(N, 1, H/8, W/8)`` — each sees a ~70×70 patch.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

__all__ = ["PatchDiscriminator"]


class PatchDiscriminator(nn.Module):
    def __init__(self, *, in_channels: int = 3, base_channels: int = 32, layers: int = 3) -> None:
        super().__init__()
        modules: list[nn.Module] = []
        channels = in_channels * 2
        width = base_channels
        for index in range(layers):
            modules += [spectral_norm(nn.Conv2d(channels, width, 4, stride=2, padding=1)), nn.LeakyReLU(0.2, inplace=True)]
            channels, width = width, min(width * 2, base_channels * 8)
        modules += [
            spectral_norm(nn.Conv2d(channels, channels, 3, padding=1)),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(channels, 1, 3, padding=1),
        ]
        self.net = nn.Sequential(*modules)

    def forward(self, candidate: torch.Tensor, degraded: torch.Tensor) -> torch.Tensor:
        """``candidate``, ``degraded``: ``(N, 3, H, W)`` in [0, 1]. Returns logits ``(N, 1, h, w)``."""
        return self.net(torch.cat([candidate, degraded], dim=1) * 2.0 - 1.0)
