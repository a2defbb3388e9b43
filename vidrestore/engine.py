"""The stateless inference core: tiles, batches, devices and precision.

Two pieces, shared by the CLI, the video pipeline and the VapourSynth filter:

* :func:`tile_apply` — a pure function that runs any image-to-image ``fn`` over overlapping
  tiles of a batch of frames and blends the tiles back with a smooth window, so the seams of
  naive tiling disappear and peak memory depends on the tile and batch size, not the frame size.
* :class:`Restorer` — a generator network placed on a device with a compute precision, called
  on numpy or torch frames. It keeps no per-call state, so one instance may serve several
  threads at once (VapourSynth asks for frames out of order and in parallel).

Blending: each tile gets a separable weight window that is 1 in its interior and, at every edge
shared with a neighbouring tile, rises as a raised cosine (``sin²``) across the middle half of
the ``overlap`` (edges on the frame border keep weight 1: no other tile covers them). Where two
tiles share exactly ``overlap`` pixels the two ramps sum to 1; everywhere the accumulated weights
are normalised, so the blend is a convex combination of tile outputs and ``fn = identity``
returns the input to float32 rounding.

Alignment: the UNet folds 2×2 and downsamples, so it is translation-equivariant only for shifts
by multiples of its ``size_multiple``. Tiles therefore start at multiples of it (frames are
padded to a multiple first, as the UNet itself pads); misaligned tiles differ from the whole-frame
result everywhere, not only near their edges.

Batches: every forward pass of a :class:`Restorer` has exactly ``batch_size`` tiles (zero-padded),
because kernels are chosen by shape and a 1-tile pass rounds differently from a 4-tile one. So a
frame's output is bitwise the same whichever frames it is restored with — video results do not
depend on how or in which order frames are requested.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import logging
import math
import numbers
from collections.abc import Callable
from pathlib import Path
from typing import Any, overload

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vidrestore import checks
from vidrestore.device import autocast, resolve_device, resolve_precision
from vidrestore.io.convert import _LUMA_WEIGHTS  # BT.601, the weights rgb_to_gray uses
from vidrestore.nets.unet import ResBlock
from vidrestore.weights import load_generator

__all__ = ["DEFAULT_CORRECTION_FLOOR", "Restorer", "shrink_corrections", "tile_apply"]

# The Restorer's default correction floor in 8-bit levels (the CLI, the VapourSynth filter and
# the benchmarks take theirs from here; chosen in docs/model_history.md, entry 18).
DEFAULT_CORRECTION_FLOOR = 1.0

# The exponent of the correction floor's shrinkage (see shrink_corrections; chosen in
# docs/model_history.md, entry 18).
CORRECTION_FLOOR_POWER = 2.0

logger = logging.getLogger(__name__)

_INTEGER_MAXIMUM = {torch.uint8: 255.0, torch.uint16: 65535.0}
_NUMPY_DTYPES = tuple(np.dtype(t) for t in (np.uint8, np.uint16, np.float32, np.float16, np.float64))
_CHANNELS = (1, 2, 3, 4)  # gray, gray + alpha, RGB, RGBA: the stored forms of vidrestore.io


# --------------------------------------------------------------------------------------------
# Tiling
# --------------------------------------------------------------------------------------------


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _axis_layout(length: int, *, tile: int, overlap: int, alignment: int) -> tuple[list[int], int]:
    """Tile starts and tile length along one axis of ``length`` (a multiple of ``alignment``).

    The fewest tiles of at most ``tile`` pixels whose neighbours share at least ``overlap``
    pixels, made as short as that count allows and spread evenly from 0 to flush with the end;
    starts are multiples of ``alignment``. A 720-pixel axis with ``tile=512, overlap=32`` gets
    two 384-pixel tiles (6.7% recomputed) rather than two 512-pixel ones (42%).
    """
    if tile >= length:
        return [0], length
    count = -(-(length - overlap) // (tile - overlap))  # >= 2
    tile_length = min(tile, _round_up(-(-(length + (count - 1) * overlap) // count), alignment))
    spacing = (length - tile_length) / (count - 1)  # <= tile_length - overlap, a multiple of alignment
    return [round(index * spacing / alignment) * alignment for index in range(count)], tile_length


def _tile_layout(
    height: int, width: int, *, tile: int, overlap: int, alignment: int = 1
) -> tuple[list[int], list[int], int, int]:
    """Row starts, column starts, tile height and tile width for a frame padded to a multiple of ``alignment``.

    ``tile <= 0`` means one tile covering the whole (padded) frame; along an axis no longer
    than ``tile`` the tile spans the axis.
    """
    height, width = _round_up(height, alignment), _round_up(width, alignment)
    if tile <= 0:
        return [0], [0], height, width
    row_starts, tile_height = _axis_layout(height, tile=tile, overlap=overlap, alignment=alignment)
    column_starts, tile_width = _axis_layout(width, tile=tile, overlap=overlap, alignment=alignment)
    return row_starts, column_starts, tile_height, tile_width


# The ramp rises over the middle half of the overlap: a tile's outermost pixels, where its
# convolutions saw padding instead of the neighbours, get (almost) no weight. Measured on random
# UNets with 64-pixel tiles and a 16-pixel overlap this is 2-50x closer to the untiled output
# than a ramp over the whole overlap, while still being a smooth cross-fade.
_RAMP_START, _RAMP_END = 0.25, 0.75
_RAMP_FLOOR = 1e-6


def _axis_windows(length: int, starts: list[int], tile_length: int, overlap: int) -> list[torch.Tensor]:
    """Normalised 1-D blending windows, float32 ``(tile_length,)``, one per start.

    Each window is 1 inside; at an edge shared with another tile its first ``overlap`` pixels
    rise from ``_RAMP_FLOOR`` to 1 as ``sin²`` over the middle half of that span. All values are
    > 0. The windows are divided by their summed coverage, so at every position of the axis the
    windows covering it sum to 1 (to float32 rounding).
    """
    ramp_length = min(overlap, tile_length)
    position = (torch.arange(ramp_length, dtype=torch.float64) + 0.5) / max(ramp_length, 1)
    position = ((position - _RAMP_START) / (_RAMP_END - _RAMP_START)).clamp(0.0, 1.0)
    ramp = (torch.sin(0.5 * math.pi * position) ** 2).clamp(min=_RAMP_FLOOR)
    windows = []
    for start in starts:
        window = torch.ones(tile_length, dtype=torch.float64)
        if ramp_length > 0 and start > 0:
            window[:ramp_length] = torch.minimum(window[:ramp_length], ramp)
        if ramp_length > 0 and start + tile_length < length:
            window[-ramp_length:] = torch.minimum(window[-ramp_length:], ramp.flip(0))
        windows.append(window)
    coverage = torch.zeros(length, dtype=torch.float64)
    for start, window in zip(starts, windows):
        coverage[start : start + tile_length] += window
    return [(window / coverage[start : start + tile_length]).float() for start, window in zip(starts, windows)]


def _pad_to_multiple(batch: torch.Tensor, alignment: int) -> torch.Tensor:
    """Pad ``(N, C, H, W)`` at the bottom and right to multiples of ``alignment``, as the UNet does.

    Reflection when the padding is smaller than the frame, else edge replication.
    """
    height, width = batch.shape[-2:]
    pad_height, pad_width = _round_up(height, alignment) - height, _round_up(width, alignment) - width
    if not (pad_height or pad_width):
        return batch
    mode = "reflect" if pad_height < height and pad_width < width else "replicate"
    return F.pad(batch, (0, pad_width, 0, pad_height), mode=mode)


def tile_apply(
    fn: Callable[[torch.Tensor], torch.Tensor],
    batch: torch.Tensor,
    *,
    tile: int,
    overlap: int,
    tiles_per_batch: int,
    alignment: int = 1,
) -> torch.Tensor:
    """Apply ``fn`` to overlapping tiles of every frame in ``batch`` and blend the results.

    Args:
        fn: maps a float ``(T, C, h, w)`` stack of tiles to ``(T, C_out, h, w)`` (any float
            dtype, any device; results are moved to ``batch``'s device). Called with
            ``T <= tiles_per_batch``; tiles of different frames may share one call. Exceptions
            raised by ``fn`` propagate unchanged.
        batch: float ``(N, C, H, W)``, any range.
        tile: largest tile side in pixels. Along each axis the frame gets the fewest tiles of
            at most ``tile`` pixels that overlap by at least ``overlap``, each as short as that
            count allows, spread evenly with the last flush with the border (so no tile is
            mostly recomputation; when ``tile - overlap`` divides ``length - overlap`` this is
            the plain stride-``tile - overlap`` grid). Along an axis no longer than ``tile`` one
            tile spans it. ``tile <= 0``, or ``tile >= max(H, W)``, runs whole frames,
            ``tiles_per_batch`` frames per call, without blending.
        overlap: least number of pixels shared by neighbouring tiles, ``0 <= overlap < tile``;
            the blending ramp is this long. ``0`` is naive tiling (hard seams, except where
            tiles happen to overlap).
        tiles_per_batch: most tiles per ``fn`` call, ``>= 1``.
        alignment: tile offsets (and ``tile``, ``overlap``, which must be multiples of it) are
            multiples of this, and frames are first padded at the bottom and right to a multiple
            of it (reflection, as :class:`~vidrestore.nets.unet.UNet` pads). Networks that fold
            or downsample by ``2**k`` are translation-equivariant only for shifts by multiples of
            ``2**k``: pass their ``size_multiple`` so each tile sees what the whole frame would.

    Returns:
        ``(N, C_out, H, W)`` in ``batch``'s dtype and device. Tiles are accumulated in float32
        into the output frame by frame, so beyond the output (and the padded copy of the input
        when ``H`` or ``W`` is not a multiple of ``alignment``) the memory used is one stack of
        ``tiles_per_batch`` tiles and ``fn``'s result for it.
    """
    if batch.ndim != 4 or not batch.is_floating_point():
        raise ValueError(f"tile_apply: expected a float (N, C, H, W) batch, got {batch.dtype} {tuple(batch.shape)}")
    if tiles_per_batch < 1:
        raise ValueError(f"tile_apply: tiles_per_batch must be >= 1, got {tiles_per_batch}")
    if alignment < 1:
        raise ValueError(f"tile_apply: alignment must be >= 1, got {alignment}")
    if tile > 0 and not 0 <= overlap < tile:
        raise ValueError(f"tile_apply: overlap must satisfy 0 <= overlap < tile, got overlap={overlap}, tile={tile}")
    if tile > 0 and (tile % alignment or overlap % alignment):
        raise ValueError(
            f"tile_apply: tile ({tile}) and overlap ({overlap}) must be multiples of alignment ({alignment})"
        )
    frame_count, _, height, width = batch.shape
    if frame_count == 0 or height == 0 or width == 0:
        raise ValueError(f"tile_apply: empty batch {tuple(batch.shape)}")
    padded = _pad_to_multiple(batch, alignment)
    padded_height, padded_width = padded.shape[-2:]

    output: torch.Tensor | None = None
    if tile <= 0 or tile >= max(padded_height, padded_width):
        for start in range(0, frame_count, tiles_per_batch):
            frames = padded[start : start + tiles_per_batch]
            result = fn(frames)
            _check_result(result, frames)
            if output is None:
                output = batch.new_empty((frame_count, result.shape[1], height, width))
            output[start : start + tiles_per_batch] = result[..., :height, :width]
        assert output is not None
        return output

    row_starts, column_starts, tile_height, tile_width = _tile_layout(
        height, width, tile=tile, overlap=overlap, alignment=alignment
    )
    row_windows = [w.to(batch.device) for w in _axis_windows(padded_height, row_starts, tile_height, overlap)]
    column_windows = [w.to(batch.device) for w in _axis_windows(padded_width, column_starts, tile_width, overlap)]
    jobs = (
        (frame, row, column)
        for frame in range(frame_count)
        for row in range(len(row_starts))
        for column in range(len(column_starts))
    )
    for chunk in itertools.batched(jobs, tiles_per_batch):
        tiles = torch.stack(
            [
                padded[frame, :, row_starts[row] : row_starts[row] + tile_height,
                       column_starts[column] : column_starts[column] + tile_width]
                for frame, row, column in chunk
            ]
        )
        result = fn(tiles)
        _check_result(result, tiles)
        result = result.to(device=batch.device, dtype=torch.float32)
        del tiles
        if output is None:
            output = torch.zeros(
                (frame_count, result.shape[1], padded_height, padded_width), dtype=torch.float32, device=batch.device
            )
        for index, (frame, row, column) in enumerate(chunk):
            weight = row_windows[row][:, None] * column_windows[column][None, :]
            top, left = row_starts[row], column_starts[column]
            output[frame, :, top : top + tile_height, left : left + tile_width].addcmul_(result[index], weight)
    assert output is not None  # frame_count >= 1, so fn ran at least once
    if padded is not batch:
        output = output[..., :height, :width].contiguous()
    return output if batch.dtype == torch.float32 else output.to(batch.dtype)


def _check_result(result: Any, tiles: torch.Tensor) -> None:
    if (
        not isinstance(result, torch.Tensor)
        or result.ndim != 4
        or result.shape[0] != tiles.shape[0]
        or result.shape[2:] != tiles.shape[2:]
    ):
        got = tuple(result.shape) if isinstance(result, torch.Tensor) else type(result).__name__
        raise ValueError(
            f"tile_apply: fn must map (T, C, h, w) to (T, C_out, h, w); got {got} for input {tuple(tiles.shape)}"
        )


# --------------------------------------------------------------------------------------------
# Restorer
# --------------------------------------------------------------------------------------------


class Restorer:
    """A generator on a device, applied to batches of frames; thread-safe and stateless per call.

    Args:
        model: path of a generator safetensors file, an ``nn.Module`` (deep-copied, so the
            caller's module is left as it was), or ``None`` for the shipped default model.
        device: ``"auto"`` (CUDA if present, else CPU), or any torch device spec.
        precision: ``"auto"`` (CUDA: bf16, or fp16 without bf16; CPU: bf16 where the CPU has
            native bf16, else fp32), or ``"bf16"``, ``"fp16"`` (CUDA only), ``"fp32"``. Applied
            with autocast; tiles are blended in float32 whatever the precision.
        tile: tile side in pixels; ``0`` runs whole frames. Rounded up to a multiple of the
            model's ``size_multiple`` (see :func:`tile_apply`'s ``alignment``).
        tile_overlap: pixels shared by neighbouring tiles, rounded up to a multiple of
            ``size_multiple``; must stay below ``tile``. Make it cover the model's effective
            receptive field (the default 32 suits the shipped UNet).
        batch_size: tiles (or whole frames) per forward pass. Every pass has exactly this many,
            zero-padded when fewer are left (see :meth:`_forward`): a lone small frame costs a
            full pass, and ``batch_size=1`` suits one-image-at-a-time use.
        channels_last: run the model in channels-last memory format (faster with oneDNN/cuDNN).
        threads: if given, sets torch's intra-op CPU thread count (process-wide).
        strength: 0..1, how much of the model's correction is applied: the output is
            ``input + strength * (model(input) - input)``; 1 (default) is the model's output, 0
            returns the input unchanged. Lower it for footage that needs only a little help.
        correction_floor: in 8-bit levels (RMS over the frame), the size of the correction the
            model makes on an already clean frame: its own error (the shipped model changes clean
            frames by about 1.2 levels). Each frame's correction ``r = model(input) - input`` is
            shrunk by ``max(0, 1 - (floor / rms(r))**2)``: a frame the model barely changes is
            left as it was, a damaged one (rms several levels) is corrected almost in full. This
            leaves clean and soft footage far more alone and gains on average on damaged footage
            (measured in ``docs/model_history.md``, entry 18). ``0`` applies the correction as is.

    Calling the restorer (see :meth:`__call__`) accepts numpy ``(N, H, W, C)``/``(H, W, C)`` and
    torch ``(N, C, H, W)``/``(C, H, W)`` frames; :meth:`restore_tensor` is the float RGB core.
    """

    def __init__(
        self,
        model: str | Path | nn.Module | None = None,
        *,
        device: str | torch.device = "auto",
        precision: str = "auto",
        tile: int = 768,
        tile_overlap: int = 32,
        batch_size: int = 2,
        channels_last: bool = True,
        threads: int | None = None,
        strength: float = 1.0,
        correction_floor: float = DEFAULT_CORRECTION_FLOOR,
    ) -> None:
        if not all(isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_)) for v in (tile, tile_overlap)):
            raise TypeError(f"tile and tile_overlap must be integers, got {tile!r}, {tile_overlap!r}")
        tile, tile_overlap = int(tile), int(tile_overlap)
        if tile < 0 or tile_overlap < 0:
            raise ValueError(f"tile and tile_overlap must be >= 0 (tile 0: whole frames), got {tile}, {tile_overlap}")
        batch_size = checks.integer(batch_size, "batch_size", 1)
        threads = None if threads is None else checks.integer(threads, "threads", 1)
        strength = checks.real(strength, "strength", 0.0, 1.0)
        correction_floor = checks.real(correction_floor, "correction_floor", 0.0, unit="8-bit levels")

        self._device = resolve_device(device)
        self._compute_dtype = resolve_precision(precision, self._device)
        if isinstance(model, nn.Module):
            network, metadata = copy.deepcopy(model), {"source": f"module {type(model).__name__}"}
        elif model is None or isinstance(model, (str, Path)):
            network, metadata = load_generator(model)
            metadata = {**metadata, "source": str(model) if model is not None else "default"}
        else:
            raise TypeError(f"model must be a path, an nn.Module or None, got {type(model).__name__}")
        for attribute in ("in_channels", "out_channels"):
            if getattr(network, attribute, 3) != 3:
                raise ValueError(f"the model must map RGB to RGB; it has {attribute}={getattr(network, attribute)}")
        network = network.to(self._device).eval().requires_grad_(False)
        for module in network.modules():  # this copy only infers: fold residual scales into their convs
            if isinstance(module, ResBlock):
                module.fold_scale()
        if channels_last:
            network = network.to(memory_format=torch.channels_last)
        self._alignment = int(getattr(network, "size_multiple", 1))
        if tile > 0:
            tile, tile_overlap = _round_up(tile, self._alignment), _round_up(tile_overlap, self._alignment)
            if tile_overlap >= tile:
                raise ValueError(
                    f"tile_overlap ({tile_overlap}) must be smaller than tile ({tile}) "
                    f"(both rounded up to multiples of the model's size_multiple, {self._alignment}): use a tile of "
                    f"at least {tile_overlap + self._alignment}, or a smaller overlap"
                )
        if threads is not None:
            torch.set_num_threads(threads)
        self._model = network
        self._metadata = dict(metadata)
        self._tile, self._tile_overlap, self._batch_size = max(tile, 0), tile_overlap, batch_size
        self._channels_last = channels_last
        self._strength = float(strength)
        self._correction_floor = float(correction_floor)
        self._fingerprint: str | None = None
        logger.info(
            "Restorer: %s, %s, tile %d overlap %d, batch %d, correction floor %g",
            self._device, self._compute_dtype, self._tile, self._tile_overlap, batch_size, self._correction_floor,
        )

    # ---------------------------------------------------------------------------- properties

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def info(self) -> dict[str, Any]:
        """Device, compute dtype, tiling settings and the model's metadata (a fresh dict)."""
        return {
            "device": str(self._device),
            "dtype": str(self._compute_dtype).removeprefix("torch."),
            "tile": self._tile,
            "tile_overlap": self._tile_overlap,
            "batch_size": self._batch_size,
            "channels_last": self._channels_last,
            "strength": self._strength,
            "correction_floor": self._correction_floor,
            "threads": torch.get_num_threads() if self._device.type == "cpu" else None,
            "size_multiple": self._alignment,
            "model": dict(self._metadata),
        }

    @property
    def fingerprint(self) -> str:
        """A digest of everything the output depends on: the weights, device type, compute dtype
        and tiling. Two restorers with the same fingerprint give bitwise the same frames (on the
        same machine), so a resumed video job may reuse the frames an earlier run finished."""
        if self._fingerprint is None:
            digest = hashlib.sha256(
                f"{self!r} channels_last={self._channels_last} correction_floor={self._correction_floor}".encode()
            )
            for name, tensor in self._model.state_dict().items():
                digest.update(name.encode())
                digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
            self._fingerprint = digest.hexdigest()[:32]
        return self._fingerprint

    def __repr__(self) -> str:
        return (
            f"Restorer(device={self._device}, dtype={self.info['dtype']}, tile={self._tile}, "
            f"tile_overlap={self._tile_overlap}, batch_size={self._batch_size}"
            + (f", strength={self._strength:g}" if self._strength != 1.0 else "")
            + (f", correction_floor={self._correction_floor:g})"
               if self._correction_floor != DEFAULT_CORRECTION_FLOOR else ")")
        )

    # ---------------------------------------------------------------------------- core

    def _forward(self, tiles: torch.Tensor) -> torch.Tensor:
        """Model on a float32 ``(T, 3, h, w)`` stack on the device, ``T <= batch_size`` → float32 ``(T, 3, h, w)``.

        The stack is padded with zeros to exactly ``batch_size`` tiles. oneDNN and cuDNN choose
        kernels by shape, and e.g. a 1-tile pass rounds differently from a 4-tile one; with one
        shape per tile size a frame's result never depends on which other frames or tiles share
        its pass, so video output does not depend on how frames were grouped or requested.
        """
        count = tiles.shape[0]
        if count < self._batch_size:
            tiles = torch.cat([tiles, tiles.new_zeros((self._batch_size - count, *tiles.shape[1:]))])
        if self._channels_last:
            tiles = tiles.contiguous(memory_format=torch.channels_last)
        with autocast(self._device, self._compute_dtype):
            return self._model(tiles)[:count].float()

    def restore_tensor(self, frames: torch.Tensor) -> torch.Tensor:
        """Restore float RGB frames: ``(N, 3, H, W)``, any float dtype, any device, nominally in [0, 1].

        Returns ``(N, 3, H, W)`` with ``frames``' dtype and device, not clamped (the model may
        overshoot [0, 1] slightly); each frame's correction is shrunk by ``correction_floor`` and
        scaled by ``strength`` (:func:`shrink_corrections`, in place), in float32. Frames are moved to the restorer's device, computed there
        through :func:`tile_apply` and moved back.
        """
        if not isinstance(frames, torch.Tensor):
            raise TypeError(f"restore_tensor: expected a torch.Tensor, got {type(frames).__name__}")
        if frames.ndim != 4 or frames.shape[1] != 3 or not frames.is_floating_point():
            raise ValueError(
                f"restore_tensor: expected float (N, 3, H, W) frames, got {frames.dtype} {tuple(frames.shape)}"
            )
        if frames.shape[0] == 0 or frames.shape[2] == 0 or frames.shape[3] == 0:
            raise ValueError(f"restore_tensor: empty frames {tuple(frames.shape)}")
        with torch.inference_mode():
            on_device = frames.to(device=self._device, dtype=torch.float32, non_blocking=True)
            restored = tile_apply(
                self._forward,
                on_device,
                tile=self._tile,
                overlap=self._tile_overlap,
                tiles_per_batch=self._batch_size,
                alignment=self._alignment,
            )
            if self._correction_floor > 0 or self._strength != 1.0:
                shares_memory = restored.untyped_storage().data_ptr() == on_device.untyped_storage().data_ptr()
                restored = shrink_corrections(on_device, restored, self._correction_floor / 255.0,
                                              scale=self._strength, inplace=not shares_memory)
            return restored.to(device=frames.device, dtype=frames.dtype)

    def _restore_color(self, color: torch.Tensor) -> torch.Tensor:
        """float32 ``(n, 1|3, H, W)`` on the device → same shape: gray is replicated, restored, then luma."""
        if color.shape[1] == 3:
            return self.restore_tensor(color)
        restored = self.restore_tensor(color.expand(-1, 3, -1, -1))
        luma = torch.from_numpy(_LUMA_WEIGHTS).to(restored.device)
        return torch.einsum("nchw,c->nhw", restored, luma).unsqueeze(1)

    def _frames_per_chunk(self, height: int, width: int) -> int:
        """Frames moved to the device and converted to float at once (at most ``batch_size``).

        The fewest whose tiles fill whole forward passes (``batch_size / gcd(tiles per frame,
        batch_size)``), so the zero padding of :meth:`_forward` is only needed at the end of a call.
        """
        rows, columns, _, _ = _tile_layout(
            height, width, tile=self._tile, overlap=self._tile_overlap, alignment=self._alignment
        )
        return self._batch_size // math.gcd(len(rows) * len(columns), self._batch_size)

    def _to_device(self, pixels: torch.Tensor) -> torch.Tensor:
        """Copy ``(n, c, H, W)`` pixels (still integers: 4× less to transfer) to the device."""
        if self._device.type == "cuda" and pixels.device.type == "cpu":
            pixels = pixels.contiguous(memory_format=torch.channels_last).pin_memory()
        return pixels.to(self._device, non_blocking=True)

    # ---------------------------------------------------------------------------- entry points

    @overload
    def __call__(self, frames: np.ndarray) -> np.ndarray: ...
    @overload
    def __call__(self, frames: torch.Tensor) -> torch.Tensor: ...

    def __call__(self, frames: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """Restore frames; returns the same type, shape and dtype (and, for torch, device).

        * numpy ``(N, H, W, C)`` or ``(H, W, C)``, dtype ``uint8``, ``uint16``, ``float16``,
          ``float32`` or ``float64`` (floats nominally in [0, 1]);
        * torch ``(N, C, H, W)`` or ``(C, H, W)``, any float dtype, ``uint8`` or ``uint16``.

        ``C`` is 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA), as :mod:`vidrestore.io`
        stores pixels. Gray is replicated to RGB for the model and the result is the BT.601 luma
        of the restored RGB (the weights of :func:`vidrestore.io.convert.rgb_to_gray`, computed
        in float and rounded once). Alpha is copied through untouched; colour under fully
        transparent pixels (alpha 0) is kept as it is, and the model sees the nearest visible
        colour there, so hidden colour never changes visible pixels. Integer
        results are clamped to [0, 1] and rounded to nearest (as
        :func:`vidrestore.io.convert.from_float`); float results are not clamped.

        Raises:
            TypeError: not a numpy array or torch tensor, or an unsupported dtype.
            ValueError: wrong number of dimensions or channels, an empty frame, or NaN or
                infinite colour values (alpha is not looked at).
        """
        if isinstance(frames, np.ndarray):
            return self._restore_numpy(frames)
        if isinstance(frames, torch.Tensor):
            return self._restore_torch(frames)
        raise TypeError(f"expected a numpy array or a torch tensor of frames, got {type(frames).__name__}")

    def _restore_numpy(self, frames: np.ndarray) -> np.ndarray:
        if frames.dtype not in _NUMPY_DTYPES:
            raise TypeError(f"numpy frames must be uint8, uint16, float16, float32 or float64, got {frames.dtype}")
        if frames.ndim not in (3, 4) or frames.shape[-1] not in _CHANNELS:
            raise ValueError(
                f"numpy frames must be (N, H, W, C) or (H, W, C) with C in {_CHANNELS}, got shape {frames.shape}"
            )
        batch = np.ascontiguousarray(frames[None] if frames.ndim == 3 else frames)
        if not batch.flags.writeable:  # torch warns on read-only memory (decoded images often are)
            batch = batch.copy()
        # NHWC → NCHW is a view: the model's channels-last layout, no copy.
        restored = self._restore_pixels(torch.from_numpy(batch).permute(0, 3, 1, 2))
        output = restored.permute(0, 2, 3, 1).numpy()
        return output[0] if frames.ndim == 3 else output

    def _restore_torch(self, frames: torch.Tensor) -> torch.Tensor:
        if not (frames.is_floating_point() or frames.dtype in _INTEGER_MAXIMUM):
            raise TypeError(f"torch frames must be a float dtype, uint8 or uint16, got {frames.dtype}")
        if frames.ndim not in (3, 4) or frames.shape[-3] not in _CHANNELS:
            raise ValueError(
                f"torch frames must be (N, C, H, W) or (C, H, W) with C in {_CHANNELS}, got shape {tuple(frames.shape)}"
            )
        output = self._restore_pixels(frames.unsqueeze(0) if frames.ndim == 3 else frames)
        return output[0] if frames.ndim == 3 else output

    def _restore_pixels(self, batch: torch.Tensor) -> torch.Tensor:
        """Shared by both entry points: ``(N, 1|3|4, H, W)`` uint8/uint16/float → same shape, dtype, device.

        Frames go to the device a few at a time (enough to fill one forward pass), are scaled to
        float there, restored, converted back and written into the output.
        """
        frame_count, channels, height, width = batch.shape
        if frame_count == 0 or height == 0 or width == 0:
            raise ValueError(f"empty frames: (N, C, H, W) = {tuple(batch.shape)}")
        color_channels = 1 if channels <= 2 else 3
        # One NaN would spread through the convolutions and the frame-wide correction floor. A
        # float32 sum is NaN or inf when any term is (2 ms for four 1080p frames; an elementwise
        # test or a float64 sum, 60 ms); only when it is not finite (or overflowed) is each pixel tested.
        color = batch[:, :color_channels]
        # float64 beyond float32's range becomes infinite on its way to the model: tested as float32.
        probe = color.to(torch.float32) if batch.dtype == torch.float64 else color
        if batch.is_floating_point() and not bool(torch.isfinite(probe.sum(dtype=torch.float32))):
            finite = torch.isfinite(probe).flatten(1).all(dim=1)
            if not bool(finite.all()):
                raise ValueError(f"frames {torch.nonzero(~finite).flatten().tolist()[:10]} have NaN or infinite pixels"
                                 f"{' (as float32)' if batch.dtype == torch.float64 else ''}")
        output = torch.empty_like(batch)
        source, hidden = color, None
        if channels in (2, 4):
            output[:, -1] = batch[:, -1]  # alpha, untouched
            # Float alpha from resamplers leaves specks just above 0: under half a 16-bit level is hidden.
            hidden = batch[:, -1] <= 0.5 / 65535 if batch.is_floating_point() else batch[:, -1] == 0
            if bool(hidden.any()):
                # Colour under fully transparent pixels is invisible, but the convolutions would
                # carry it into the visible pixels around it (a halo at cut-out edges): the model
                # sees the nearest visible colour there instead, and the hidden colour is kept.
                source = _fill_hidden(source, hidden)
            else:
                hidden = None
        chunk = self._frames_per_chunk(height, width)
        with torch.inference_mode():
            for start in range(0, frame_count, chunk):
                color = _to_unit_float(self._to_device(source[start : start + chunk]))
                restored = _from_unit_float(self._restore_color(color), batch.dtype)
                output[start : start + chunk, :color_channels] = restored.to(batch.device)
        if hidden is not None:
            colour = _bits(output[:, :color_channels])
            colour.copy_(torch.where(hidden[:, None], _bits(batch[:, :color_channels]), colour))
        return output


def _bits(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` itself, or for uint16 (which torch can store but not index or select in) the same
    memory as int16: copying and selecting move the bits unchanged."""
    return tensor.view(torch.int16) if tensor.dtype == torch.uint16 else tensor


def _fill_hidden(color: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
    """``color`` ``(N, C, H, W)`` with each pixel where ``hidden`` ``(N, H, W)`` holds replaced by
    the nearest pixel where it does not (frames hidden entirely are left as they are)."""
    import cv2  # only images with transparency need it

    filled = color.clone(memory_format=torch.contiguous_format)  # reshape below must be a view
    values = _bits(filled)
    for index in range(color.shape[0]):
        mask = hidden[index].cpu().numpy()
        if mask.all() or not mask.any():
            continue
        # Each hidden pixel gets the label of its nearest visible pixel; labels count the visible
        # pixels in raster order from 1.
        _, labels = cv2.distanceTransformWithLabels(mask.astype(np.uint8), cv2.DIST_L2, 5,
                                                    labelType=cv2.DIST_LABEL_PIXEL)
        flat_mask = mask.ravel()
        nearest = np.flatnonzero(~flat_mask)[labels.ravel()[flat_mask] - 1]
        flat = values[index].view(color.shape[1], -1)
        flat[:, torch.from_numpy(np.flatnonzero(flat_mask)).to(flat.device)] = flat[
            :, torch.from_numpy(nearest).to(flat.device)]
    return filled


def shrink_corrections(
    frames: torch.Tensor,
    restored: torch.Tensor,
    floor: float,
    *,
    power: float = CORRECTION_FLOOR_POWER,
    scale: float = 1.0,
    inplace: bool = False,
) -> torch.Tensor:
    """``frames + scale * g * (restored - frames)`` per frame, ``g = max(0, 1 - (floor / rms)**power)``.

    ``rms`` is the root mean square of the frame's correction over all its pixels and channels
    (``floor`` in the same [0, 1] units). Like positive-part James-Stein shrinkage: a correction
    whose energy is about the model's error floor is mostly that error (``floor`` 0: ``g`` = 1).
    ``scale`` is the Restorer's ``strength``. Each frame is reduced on its own (a loop, not one
    batched reduction) so the result never depends on its batch.
    ``inplace=True`` writes into ``restored`` (no frame-sized temporaries: the engine's peak
    memory stays bounded by its tiles); ``restored`` must not share memory with ``frames``.
    """
    out = restored if inplace else restored.clone()
    for index in range(frames.shape[0]):
        correction = out[index].sub_(frames[index])
        flat = correction.reshape(-1)  # a view when contiguous; dot needs no temporary (unlike a norm)
        rms = torch.sqrt(torch.dot(flat, flat) / flat.numel())
        gain = torch.clamp(1.0 - (floor / torch.clamp(rms, min=1e-12)) ** power, min=0.0) * scale
        correction.mul_(gain).add_(frames[index])
    return out


def _to_unit_float(pixels: torch.Tensor) -> torch.Tensor:
    """uint8/uint16 (scaled by 1/255, 1/65535) or float pixels → float32, same shape and device."""
    if pixels.dtype in _INTEGER_MAXIMUM:
        return pixels.to(torch.float32) / _INTEGER_MAXIMUM[pixels.dtype]
    return pixels.to(torch.float32)


def _from_unit_float(pixels: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """float32 pixels → ``dtype``: integers are clamped to [0, 1], scaled and rounded (NaN → 0)."""
    if dtype not in _INTEGER_MAXIMUM:
        return pixels.to(dtype)
    scaled = torch.nan_to_num(pixels, nan=0.0).clamp_(0.0, 1.0).mul_(_INTEGER_MAXIMUM[dtype]).round_()
    return scaled.to(dtype)
