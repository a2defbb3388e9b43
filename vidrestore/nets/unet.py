"""U-Net generator: 3 channels in, same size out.

An encoder–decoder with skip connections built from residual 3×3 convolution blocks. Dense 3×3
convolutions in channels_last bf16 run near the matmul peak on CPUs (oneDNN) and GPUs, unlike
depthwise convolutions, so the network spends its compute where the hardware is fastest. The
input is first folded 2×2 into channels (pixel-unshuffle, lossless), so the finest level runs at
half resolution; a global residual adds the input back, so the net predicts a correction.

Any input size works: :meth:`UNet.forward` pads to a multiple of ``2 ** (depth + 1)`` by
reflection and crops back.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["UNet", "ResBlock"]


class ResBlock(nn.Module):
    """``x + conv3x3(act(conv3x3(x)))`` with a learnable residual scale (starts at 0.1)."""

    def __init__(self, channels: int, *, negative_slope: float = 0.1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.act = nn.LeakyReLU(negative_slope, inplace=True)
        self.scale = nn.Parameter(torch.full((1, channels, 1, 1), 0.1))
        self.folded = False

    @torch.no_grad()
    def fold_scale(self) -> None:
        """For inference: multiply the residual scale into ``conv2`` (its weights and bias, per output
        channel) and set it to 1, so the block adds the conv's output to ``x`` in place — one pass over
        the features instead of a multiply and an add, each with a tensor of its own. The block
        computes the same function up to rounding; its parameters are no longer the trained ones,
        so fold a copy, never a network that is still training."""
        if not self.folded:
            scale = self.scale.reshape(-1)
            self.conv2.weight.mul_(scale.reshape(-1, 1, 1, 1).to(self.conv2.weight.dtype))
            self.conv2.bias.mul_(scale.to(self.conv2.bias.dtype))
            self.scale.fill_(1.0)
            self.folded = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.folded:
            return x + self.scale * self.conv2(self.act(self.conv1(x)))
        out = self.conv2(self.act(self.conv1(x)))
        # The unfolded sum's dtype: under autocast the fp32 scale made it fp32 whatever the conv gave.
        dtype = torch.promote_types(x.dtype, torch.promote_types(out.dtype, self.scale.dtype))
        return (out if out.dtype == dtype else out.to(dtype)).add_(x)


def _stage(channels: int, blocks: int) -> nn.Sequential:
    return nn.Sequential(*(ResBlock(channels) for _ in range(blocks)))


def _fits_inside(small: torch.Size, big: torch.Size) -> bool:
    """``small`` is ``big`` with some of its first two dimensions (channels) narrower."""
    return len(small) == len(big) and small[2:] == big[2:] and all(s <= b for s, b in zip(small[:2], big[:2]))


class UNet(nn.Module):
    """U-Net restorer. Input/output: float ``(N, in_channels, H, W)``, nominally in [0, 1].

    Levels: ``depth`` downsamplings after the 2×2 fold; level ``i`` has
    ``base_channels * channel_multipliers[i]`` channels and ``encoder_blocks[i]`` /
    ``decoder_blocks[i]`` residual blocks; ``middle_blocks`` at the bottom. Skips are added
    (not concatenated) so the decoder costs the same as the encoder. With ``gate``, a 3×3 conv
    on the last decoder features weighs the correction per pixel by ``2·sigmoid(z)``: the net can
    leave clean regions exactly as they are (weight → 0) or strengthen a timid correction.
    """

    def __init__(
        self,
        *,
        in_channels: int = 3,
        out_channels: int = 3,
        base_channels: int = 32,
        channel_multipliers: tuple[int, ...] = (1, 2, 4),
        encoder_blocks: tuple[int, ...] = (1, 1, 1),
        decoder_blocks: tuple[int, ...] = (1, 1, 1),
        middle_blocks: int = 2,
        gate: bool = False,
    ) -> None:
        super().__init__()
        if not (len(channel_multipliers) == len(encoder_blocks) == len(decoder_blocks)):
            raise ValueError("channel_multipliers, encoder_blocks and decoder_blocks need one entry per level")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.depth = len(channel_multipliers) - 1
        widths = [base_channels * m for m in channel_multipliers]
        self.head = nn.Conv2d(in_channels * 4, widths[0], 3, padding=1)
        self.encoders = nn.ModuleList(_stage(w, b) for w, b in zip(widths, encoder_blocks))
        self.downs = nn.ModuleList(nn.Conv2d(widths[i], widths[i + 1], 2, stride=2) for i in range(self.depth))
        self.middle = _stage(widths[-1], middle_blocks)
        self.ups = nn.ModuleList(
            nn.Sequential(nn.Conv2d(widths[i + 1], widths[i] * 4, 1), nn.PixelShuffle(2)) for i in range(self.depth)
        )
        self.decoders = nn.ModuleList(_stage(w, b) for w, b in zip(widths, decoder_blocks))
        self.tail = nn.Conv2d(widths[0], out_channels * 4, 3, padding=1)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)
        self.gate: nn.Conv2d | None = None
        if gate:
            # Per-pixel weight 2·sigmoid(z) ∈ (0, 2) on the correction; z starts at 0 (weight 1), so
            # adding a gate to trained weights changes nothing until it is trained.
            self.gate = nn.Conv2d(widths[0], 4, 3, padding=1)
            nn.init.zeros_(self.gate.weight)
            nn.init.zeros_(self.gate.bias)

    def load_grown(self, state: dict[str, torch.Tensor]) -> list[str]:
        """Load the weights of a *smaller* U-Net of the same layout — fewer residual blocks per
        stage, narrower levels, or no gate — so that this network starts out computing exactly
        what the smaller one did (function-preserving growth), then training continues from there.

        - A block it lacks becomes an identity (residual scale 0); a missing gate is neutral
          (weight 1).
        - A narrower tensor fills the leading slice of this one's (new channels are appended, and
          PixelShuffle's channel order keeps appended rows on appended channels); every weight that
          *reads* a new channel starts at 0 and every weight that *writes* one keeps its fresh
          initialisation, so the new channels carry features that nothing reads yet — the output
          is unchanged, and the first step's gradient reaches the zero weights that read them.

        Returns the names of the blocks (and ``"gate"``) that were added, then ``"<tensor>
        (widened)"`` for each widened tensor. Raises ``RuntimeError`` (as ``load_state_dict``
        does) when ``state`` has a tensor this network lacks or one larger in some dimension or of
        another kernel size, or when a block is partly present.
        """
        own = self.state_dict()
        unexpected = [k for k in state if k not in own]
        mismatched = [k for k in state if k in own and not _fits_inside(state[k].shape, own[k].shape)]
        if unexpected or mismatched:
            raise RuntimeError(f"cannot grow from these weights: unexpected {unexpected[:4]}, shape mismatch {mismatched[:4]}")
        missing = {k for k in own if k not in state}
        added = []
        for name, module in self.named_modules():
            if isinstance(module, ResBlock):
                keys = {f"{name}.{k}" for k in module.state_dict()}
                if keys <= missing:
                    added.append(name)
                    missing -= keys
        if self.gate is not None and {"gate.weight", "gate.bias"} <= missing:
            added.append("gate")
            missing -= {"gate.weight", "gate.bias"}
        if missing:
            raise RuntimeError(f"cannot grow from these weights: missing {sorted(missing)[:4]}, not whole residual blocks")
        conv_weights = {f"{name}.weight" for name, module in self.named_modules() if isinstance(module, nn.Conv2d)}
        widened = {}
        for key, old in state.items():
            if old.shape == own[key].shape:
                continue
            new = own[key].clone()
            if key in conv_weights:  # (out, in, kh, kw): what reads the new input channels starts at 0
                new[:, old.shape[1]:] = 0
            new[tuple(slice(0, n) for n in old.shape)] = old
            widened[key] = new
            added.append(f"{key} (widened)")
        self.load_state_dict(state | widened, strict=False)
        with torch.no_grad():
            for name in added:  # a block adds nothing (scale 0); a gate conv outputs 0 (weight 1)
                if name.endswith("(widened)"):
                    continue
                module = self.get_submodule(name)
                for tensor in [module.scale] if isinstance(module, ResBlock) else [module.weight, module.bias]:
                    tensor.zero_()
        return added

    @property
    def size_multiple(self) -> int:
        """Height and width are padded to a multiple of this."""
        return 2 ** (self.depth + 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected (N, {self.in_channels}, H, W), got {tuple(x.shape)}")
        height, width = x.shape[-2:]
        m = self.size_multiple
        pad_h, pad_w = (-height) % m, (-width) % m
        if pad_h or pad_w:
            mode = "reflect" if pad_h < height and pad_w < width else "replicate"
            x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
        feats = self.head(F.pixel_unshuffle(x, 2))
        skips = []
        for level in range(self.depth):
            feats = self.encoders[level](feats)
            skips.append(feats)
            feats = self.downs[level](feats)
        feats = self.middle(self.encoders[self.depth](feats))
        feats = self.decoders[self.depth](feats)
        for level in reversed(range(self.depth)):
            feats = self.decoders[level](self.ups[level](feats) + skips[level])
        correction = F.pixel_shuffle(self.tail(feats), 2)
        if self.gate is not None:
            correction = correction * (2.0 * torch.sigmoid(F.pixel_shuffle(self.gate(feats), 2)))
        out = x[:, : self.out_channels] + correction
        return out[..., :height, :width]
