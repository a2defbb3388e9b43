"""VapourSynth filter: vidrestore's restoration as ``restore(clip, ...)``.

    import vapoursynth as vs
    import vidrestore_vs as vr
    clip = vr.restore(vs.core.bs.VideoSource("in.mkv"), temporal_radius=2)

The graph it builds, all of it VapourSynth nodes except one Python frame callback:

1. **To the model's space.** Each frame is converted to RGBS (float32 RGB in [0, 1], full range)
   with ``core.resize.Bicubic`` (chroma upsampling; luma is never resized). The colour
   description is read from *that frame's* props — ``_Matrix``, ``_Range`` (or the deprecated
   ``_ColorRange``), ``_ChromaLocation`` — and, where a prop is missing or unspecified,
   defaulted the way vstools does: BT.601 (SMPTE 170M; BT.470BG at 576 lines) up to 1024×576,
   BT.709 above (as players guess, and as the file pipeline does); limited range for YUV and GRAY, full for RGB;
   left chroma siting. GRAY is restored as RGB with R = G = B and returned as the BT.601 luma of
   the restored RGB, exactly as :class:`vidrestore.Restorer` treats gray frames.
2. **Restore + temporal fusion** in a ``std.ModifyFrame`` over shifted copies of the RGBS clip
   (``clip[0] * k + clip[:-k]`` and the like), so VapourSynth itself fetches the source frames
   frame ``n`` may use; the callback never requests frames, so it cannot deadlock the frame
   scheduler. Output ``n`` depends on source frames ``n - radius .. n + radius`` only, never on
   earlier outputs (see :mod:`vidrestore.temporal`): any frame can be requested alone, in any
   order, from any thread, and comes out byte-identical.
3. **Back** to the input's format (or ``format=``) with the same frame's colour description, and
   every frame prop of the input frame is copied onto the output (timestamps, ``_AbsoluteTime``,
   colour props, ``_SceneChangePrev``/``_SceneChangeNext``, user props). If ``format=`` changes
   the colour family, the colour props describe the new family instead.

Batching and caching. Restored (pre-fusion) frames are cached in a bounded LRU of *chunks*:
chunk ``c`` is source frames ``c*batch_size .. c*batch_size + batch_size - 1``, restored in one
batched :class:`~vidrestore.Restorer` call. Requests for any frame of a chunk share one
computation (a per-chunk future: concurrent requests wait for it instead of restoring again),
so each source frame is restored once when frames are requested sequentially or in parallel.
The chunks are fixed by frame number rather than gathered from whichever requests happen to be
waiting: batched float32 convolutions differ from unbatched ones in the last bits (measured on
this project's UNet: 3.6e-7 between a frame restored alone and in a batch of four), so a batch
whose make-up depended on thread timing would break the byte-identical guarantee. Fixed chunks
are also exactly the batches :func:`vidrestore.video.restore_frames` forms, so the filter and the
file pipeline restore the same frames together.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import vapoursynth as vs

from vidrestore import checks
from vidrestore.engine import DEFAULT_CORRECTION_FLOOR, Restorer
from vidrestore.errors import ModelError
from vidrestore.io.video import default_matrix
from vidrestore.temporal import TemporalConfig, fuse_window, is_scene_cut, luma_u8

__all__ = ["restore"]

logger = logging.getLogger(__name__)

_NAME = "vidrestore_vs.restore"
_T = TypeVar("_T")

# Frame props that describe colour; the rest of a frame's props are copied through untouched.
_COLOUR_PROPS = ("_Matrix", "_Range", "_ColorRange", "_ChromaLocation")
# What resize reads from a frame, and prefers to its arguments: removed before each conversion,
# whose arguments come from _frame_colour (a reserved _Matrix would otherwise fail in zimg).
_RESIZE_PROPS = [*_COLOUR_PROPS, "_Primaries", "_Transfer"]
_MATRIX_UNSPECIFIED, _MATRIX_RESERVED = 2, 3
_MATRIX_BT470BG, _MATRIX_SMPTE170M = 5, 6
# The _Matrix values resize converts YUV with (ITU-T H.273): 709, FCC, 470BG, 170M, 240M, YCgCo,
# 2020 NCL, 2020 CL, chromaticity-derived NCL and CL, ICtCp.
_YUV_MATRICES = frozenset({1, 4, 5, 6, 7, 8, 9, 10, 12, 13, 14})
# Matrices defined through primaries and transfer: for each, the ``_Primaries`` and ``_Transfer``
# values resize accepts with it, and the value taken when the frame has none of those (None: the
# frame must say). BT.2020 CL has the standard's own (BT.2020, its BT.709-shaped curve); the
# chromaticity-derived NCL matrix does not use the transfer; ICtCp is PQ or HLG on BT.2020.
_PRIMARIES = frozenset({1, 4, 5, 6, 7, 8, 9, 11, 12, 22})
_TRANSFERS = frozenset({1, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18})
_MATRIX_NEEDS: dict[int, tuple[frozenset[int], int | None, frozenset[int], int | None]] = {
    10: (_PRIMARIES | {10}, 9, frozenset({1, 6, 7, 14, 15}), 14),
    12: (_PRIMARIES, None, _TRANSFERS, 1),
    13: (_PRIMARIES, None, _TRANSFERS, None),
    14: (frozenset({9}), 9, frozenset({16, 18}), None),
}
# BT.601 luma weights (0.299, 0.587, 0.114), the ones the engine uses for gray frames.
_MATRIX_GRAY = _MATRIX_SMPTE170M
_CHROMA_LEFT = 0
_RANGE_LIMITED, _RANGE_FULL = 0, 1  # resize's ``range`` values, and the ``_Range`` prop's


# --------------------------------------------------------------------------------------------
# Formats and colour description
# --------------------------------------------------------------------------------------------


def _check_format(fmt: vs.VideoFormat | None, what: str) -> vs.VideoFormat:
    if fmt is None or fmt.id == 0 or fmt.color_family == vs.UNDEFINED:
        raise vs.Error(f"{_NAME}: {what} has a variable format; convert it to one constant format first")
    if fmt.color_family not in (vs.RGB, vs.YUV, vs.GRAY):
        raise vs.Error(f"{_NAME}: {what} must be RGB, YUV or GRAY, got {fmt.name}")
    integer_ok = fmt.sample_type == vs.INTEGER and 8 <= fmt.bits_per_sample <= 16
    float_ok = fmt.sample_type == vs.FLOAT and fmt.bits_per_sample in (16, 32)
    if not (integer_ok or float_ok):
        raise vs.Error(
            f"{_NAME}: {what} must be 8-16 bit integer or 16/32 bit float, got {fmt.name} "
            f"({fmt.bits_per_sample}-bit {'float' if fmt.sample_type == vs.FLOAT else 'integer'})"
        )
    return fmt


def _default_matrix(width: int, height: int) -> int:
    """The file pipeline's rule (:func:`vidrestore.io.video.default_matrix`, as players guess), so
    an untagged clip restores alike in both: BT.601 up to 1024×576 (BT.470BG at 576 lines, the
    same matrix), BT.709 above."""
    matrix = default_matrix(width, height)
    return _MATRIX_BT470BG if matrix == _MATRIX_SMPTE170M and height == 576 else matrix


@dataclass(frozen=True)
class _Colour:
    """How one frame's integer/float samples map to RGB: resize's ``matrix``/``range``/``chromaloc``,
    and ``primaries``/``transfer`` for the matrices that need them (``None`` otherwise)."""

    matrix: int
    range: int
    chromaloc: int
    primaries: int | None = None
    transfer: int | None = None


def _frame_colour(props: Mapping[str, Any], family: vs.ColorFamily, width: int, height: int) -> _Colour:
    """The colour description of a frame of ``family``: its props, defaults where they are missing
    (or where the ``_Matrix`` is one YUV cannot have: RGB's 0, SMPTE 2085's 11, out of range)."""
    matrix = props.get("_Matrix")
    if not isinstance(matrix, int) or matrix not in _YUV_MATRICES:
        matrix = _default_matrix(width, height) if family == vs.YUV else _MATRIX_GRAY
    primaries = transfer = None
    if family == vs.YUV and matrix in _MATRIX_NEEDS:
        # Constant-luminance, chromaticity-derived and ICtCp matrices are defined through the
        # primaries and the transfer curve: resize needs both, from the frame or the standard's.
        primaries_ok, primaries_default, transfers_ok, transfer_default = _MATRIX_NEEDS[matrix]
        primaries = _known_tag(props, "_Primaries", matrix, primaries_ok, primaries_default)
        transfer = _known_tag(props, "_Transfer", matrix, transfers_ok, transfer_default)
    if "_Range" in props:
        colour_range = _RANGE_FULL if int(props["_Range"]) == _RANGE_FULL else _RANGE_LIMITED
    elif "_ColorRange" in props:  # deprecated prop, opposite numbering: 0 = full, 1 = limited
        colour_range = _RANGE_FULL if int(props["_ColorRange"]) == 0 else _RANGE_LIMITED
    else:
        colour_range = _RANGE_FULL if family == vs.RGB else _RANGE_LIMITED
    chromaloc = props.get("_ChromaLocation")
    if not isinstance(chromaloc, int) or not 0 <= chromaloc <= 5:
        chromaloc = _CHROMA_LEFT
    return _Colour(matrix, colour_range, chromaloc, primaries, transfer)


def _known_tag(props: Mapping[str, Any], name: str, matrix: int, accepted: frozenset[int],
               default: int | None) -> int:
    """The frame's ``name`` prop if resize accepts it with ``matrix``, else ``default``; a
    :class:`vs.Error` naming the prop when there is no default."""
    value = props.get(name)
    if isinstance(value, int) and value in accepted:
        return value
    if default is None:
        has = "has none" if value is None else f"has {value!r}"
        raise vs.Error(f"{_NAME}: _Matrix {matrix} needs {name} in {sorted(accepted)} on the frame (it {has}); "
                       "set it with std.SetFrameProps")
    return default


def _yuv_arguments(colour: _Colour, suffix: str) -> dict[str, int]:
    """resize's arguments for a YUV side: ``matrix``, ``range``, ``chromaloc`` (+ ``primaries`` and
    ``transfer`` where the matrix needs them), each name with ``suffix`` (``"_in"`` or ``""``)."""
    arguments = {"matrix": colour.matrix, "range": colour.range, "chromaloc": colour.chromaloc}
    if colour.primaries is not None:  # set with the transfer, by _frame_colour
        arguments |= {"primaries": colour.primaries, "transfer": colour.transfer}
    arguments = {name + suffix: value for name, value in arguments.items()}
    if colour.primaries is not None and not suffix:
        # The RGB side (props removed) is in the same primaries and transfer.
        arguments |= {"primaries_in": colour.primaries, "transfer_in": colour.transfer}
    return arguments


def _to_rgbs_arguments(colour: _Colour, family: vs.ColorFamily) -> dict[str, int]:
    if family == vs.YUV:
        return _yuv_arguments(colour, "_in")
    return {"range_in": colour.range}  # RGB, and GRAY (replicated to R = G = B)


def _from_rgbs_arguments(
    colour: _Colour, in_family: vs.ColorFamily, out_family: vs.ColorFamily, width: int, height: int
) -> dict[str, int]:
    """resize arguments from RGBS back to ``out_family``: the frame's own description, or, when
    ``format=`` changes the family, that family's defaults. GRAY is always BT.601 luma."""
    if out_family != in_family:
        colour = _frame_colour({}, out_family, width, height)
    if out_family == vs.YUV:
        return _yuv_arguments(colour, "")
    if out_family == vs.GRAY:
        return {"matrix": _MATRIX_GRAY, "range": colour.range}
    return {"range": colour.range}


def _convert_per_frame(
    core: vs.Core,
    clip: vs.VideoNode,
    fmt: vs.VideoFormat,
    prop_src: vs.VideoNode,
    arguments: Callable[[Mapping[str, Any]], dict[str, int]],
) -> vs.VideoNode:
    """``clip`` converted to ``fmt`` frame by frame, with resize arguments from ``prop_src``'s props.

    One resize node per distinct set of arguments, made on first use (almost always just one),
    so frames whose props differ within a clip (spliced sources) are each converted correctly.
    """
    nodes: dict[tuple[tuple[str, int], ...], vs.VideoNode] = {}
    lock = threading.Lock()
    template = core.std.BlankClip(clip, format=fmt.id, keep=True)
    bare = core.std.RemoveFrameProps(clip, props=_RESIZE_PROPS)  # the arguments decide, not the props

    def select(n: int, f: vs.VideoFrame) -> vs.VideoNode:
        key = tuple(sorted(arguments(f.props).items()))
        with lock:
            node = nodes.get(key)
            if node is None:
                node = nodes[key] = core.resize.Bicubic(bare, format=fmt.id, dither_type="none", **dict(key))
        return node

    return core.std.FrameEval(template, select, prop_src=prop_src)


def _with_correction(
    core: vs.Core,
    clip: vs.VideoNode,
    rgbs: vs.VideoNode,
    restored: vs.VideoNode,
    colour: Callable[[Mapping[str, Any]], _Colour],
    out_format: vs.VideoFormat,
) -> vs.VideoNode:
    """``clip`` plus the model's correction ``restored - rgbs``, in ``out_format`` — a YUV format
    of ``clip``'s own subsampling, at any depth: the correction is converted back, not the picture.

    Chroma upsampled to RGB and subsampled again is not the chroma it was (bicubic both ways:
    noisy chroma lost 4 levels on average in one pass). Converted this way a frame the model
    leaves alone (``strength=0``, the correction floor) comes back bit-exact, and every frame's
    chroma is its own plus the correction. Sums are in 32-bit float YUV of the same subsampling;
    integer <-> float at one subsampling is exact, so only the final rounding remains (or, to
    another depth, the conversion of the picture as it was, since the sum adds the correction
    ``y - z`` to it: exactly 0 where there is none).
    """
    fmt = clip.format
    float_format = core.query_video_format(vs.YUV, vs.FLOAT, 32, fmt.subsampling_w, fmt.subsampling_h)

    def from_rgbs(props: Mapping[str, Any]) -> dict[str, int]:
        return _yuv_arguments(colour(props), "")

    def same_range(props: Mapping[str, Any]) -> dict[str, int]:
        c = colour(props)
        return {"range_in": c.range, "range": c.range, "chromaloc_in": c.chromaloc, "chromaloc": c.chromaloc}

    base = _convert_per_frame(core, clip, float_format, clip, same_range)
    after = _convert_per_frame(core, restored, float_format, clip, from_rgbs)
    before = _convert_per_frame(core, rgbs, float_format, clip, from_rgbs)
    summed = core.std.Expr([base, after, before], "x y z - +")
    return _convert_per_frame(core, summed, out_format, clip, same_range)


# --------------------------------------------------------------------------------------------
# A bounded LRU whose values are computed once
# --------------------------------------------------------------------------------------------


class _OnceCache:
    """Thread-safe LRU of at most ``capacity`` finished values, each computed once per key.

    :meth:`get` returns the cached value, or computes it on the calling thread while any other
    thread asking for the same key waits for that one computation (a per-key future). A failed
    computation raises in every waiting thread and is forgotten, so a later call retries. Only
    finished entries are evicted (least recently used first); entries still being computed —
    at most one per thread — may briefly take the size above ``capacity``.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._entries: OrderedDict[Hashable, Future[Any]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def get(self, key: Hashable, compute: Callable[[], _T]) -> _T:
        with self._lock:
            future = self._entries.get(key)
            owner = future is None
            if owner:
                future = self._entries[key] = Future()
                self._evict()
            else:
                self._entries.move_to_end(key)
        if not owner:
            return future.result()
        try:
            value = compute()
        except BaseException as exc:
            with self._lock:
                if self._entries.get(key) is future:
                    del self._entries[key]
            future.set_exception(exc)
            raise
        future.set_result(value)
        with self._lock:
            self._evict()
        return value

    def _evict(self) -> None:
        excess = len(self._entries) - self.capacity
        if excess <= 0:
            return
        for key in [key for key, future in self._entries.items() if future.done()][:excess]:
            del self._entries[key]


# --------------------------------------------------------------------------------------------
# The frame callback
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Restored:
    image: np.ndarray  # float32 (H, W, 3), the generator's output (not clamped)
    luma: np.ndarray  # uint8 (H, W), luma_u8(image), for optical flow


def _frame_to_image(frame: vs.VideoFrame) -> np.ndarray:
    """RGBS frame → float32 ``(H, W, 3)`` (a copy)."""
    return np.stack([np.asarray(frame[plane]) for plane in range(3)], axis=-1)


class _TemporalRestore:
    """Restores chunks of source frames on demand and fuses each output frame's window.

    ``__call__(n, f)`` is the ``std.ModifyFrame`` selector: ``f[i]`` is RGBS source frame
    ``clamp(n + i - reach)`` for ``i`` in ``0 .. 2 * reach`` (``f`` itself when ``reach`` is 0).
    """

    def __init__(
        self,
        restorer: Callable[[np.ndarray], np.ndarray],
        *,
        num_frames: int,
        chunk: int,
        config: TemporalConfig,
        num_streams: int,
        cache_chunks: int,
    ) -> None:
        self.restorer = restorer
        self.num_frames = num_frames
        self.chunk = chunk
        self.config = config
        self.radius = config.radius if config.strength > 0 else 0
        # Frames of every chunk that overlaps the window n - radius .. n + radius.
        self.reach = min(self.radius + chunk - 1, num_frames - 1)
        self.streams = threading.Semaphore(num_streams)
        self.chunks = _OnceCache(cache_chunks)
        # Cut flags are a pure function of two source frames: cheap to keep many.
        self.cuts = _OnceCache(max(4096, 4 * cache_chunks * chunk))

    def _restore_chunk(self, index: int, images: Callable[[int], np.ndarray]) -> list[_Restored]:
        start = index * self.chunk
        stop = min(start + self.chunk, self.num_frames)
        batch = np.stack([images(m) for m in range(start, stop)])
        try:
            with self.streams:
                restored = self.restorer(batch)
        except ValueError as exc:
            bad = [start + i for i, image in enumerate(batch) if not np.isfinite(image).all()]
            if not bad:
                raise
            together = ""
            if stop - start > 1:
                together = f"; frames {start}-{stop - 1} are restored together, so each of them fails"
            raise vs.Error(f"{_NAME}: source frame{'s' if len(bad) > 1 else ''} {', '.join(map(str, bad))} "
                           f"{'have' if len(bad) > 1 else 'has'} NaN or infinite pixels{together}") from exc
        restored = np.asarray(restored)
        if restored.shape != batch.shape:
            raise vs.Error(f"{_NAME}: the restorer returned shape {restored.shape} for input {batch.shape}")
        if restored.dtype.kind != "f":
            raise vs.Error(f"{_NAME}: the restorer returned {restored.dtype} pixels; it must return float RGB in "
                           "[0, 1], as it is given")
        logger.debug("restored frames %d-%d", start, stop - 1)
        return [_Restored(image, luma_u8(image)) for image in np.ascontiguousarray(restored, dtype=np.float32)]

    def _is_cut(self, m: int, source: Callable[[int], vs.VideoFrame], images: Callable[[int], np.ndarray]) -> bool:
        """Scene cut between frames ``m`` and ``m + 1``: their props say so, or their pictures differ."""
        if source(m + 1).props.get("_SceneChangePrev") or source(m).props.get("_SceneChangeNext"):
            return True
        return is_scene_cut(images(m), images(m + 1), threshold=self.config.cut_threshold,
                            correlation=self.config.cut_correlation)

    def __call__(self, n: int, f: vs.VideoFrame | list[vs.VideoFrame]) -> vs.VideoFrame:
        # ModifyFrame passes a bare frame, not a one-item list, when it is given one clip; and
        # indexing a frame gives a plane, so it must be wrapped before source() indexes it.
        frames = [f] if isinstance(f, vs.VideoFrame) else f

        def source(m: int) -> vs.VideoFrame:
            return frames[m - n + self.reach]

        converted: dict[int, np.ndarray] = {}

        def images(m: int) -> np.ndarray:
            if m not in converted:
                converted[m] = _frame_to_image(source(m))
            return converted[m]

        def restored(m: int) -> _Restored:
            index = m // self.chunk
            return self.chunks.get(index, partial(self._restore_chunk, index, images))[m - index * self.chunk]

        low, high = max(0, n - self.radius), min(self.num_frames - 1, n + self.radius)
        window = [restored(m) for m in range(low, high + 1)]
        if high > low:
            cuts = [
                self.cuts.get(m, partial(self._is_cut, m, source, images)) for m in range(low, high)
            ]
            fused = fuse_window([r.image for r in window], n - low, cuts=cuts, config=self.config,
                                lumas=[r.luma for r in window])
        else:
            fused = window[0].image
        out = source(n).copy()
        for plane in range(3):
            np.copyto(np.asarray(out[plane]), fused[..., plane])
        return out


def _shifted(clip: vs.VideoNode, offset: int) -> vs.VideoNode:
    """Frame ``n`` of the result is frame ``clamp(n + offset, 0, len - 1)`` of ``clip``."""
    if offset == 0:
        return clip
    if offset > 0:
        return clip[offset:] + clip[-1] * offset
    return clip[0] * -offset + clip[:offset]


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def _check_int(value: Any, name: str, minimum: int) -> int:
    try:
        return checks.integer(value, name, minimum)
    except ValueError as exc:
        raise vs.Error(f"{_NAME}: {exc}") from None


def restore(
    clip: vs.VideoNode,
    *,
    model: str | Path | Any | None = None,
    tile: int = 512,
    tile_overlap: int = 32,
    batch_size: int = 4,
    strength: float = 1.0,
    correction_floor: float = DEFAULT_CORRECTION_FLOOR,
    temporal: bool = True,
    temporal_radius: int = 2,
    temporal_strength: float = 1.0,
    device: str | None = None,
    precision: str | None = None,
    num_streams: int | None = None,
    restorer: Restorer | Callable[[np.ndarray], np.ndarray] | None = None,
    format: int | vs.VideoFormat | vs.PresetVideoFormat | None = None,  # noqa: A002 - VapourSynth's name
) -> vs.VideoNode:
    """Restore ``clip`` (deblur, denoise, de-artifact) with vidrestore's generator.

    Args:
        clip: constant format and size; RGB, YUV or GRAY; 8-16 bit integer or 16/32 bit float.
            GRAY is restored as RGB with R = G = B and returned as BT.601 luma.
        model: generator safetensors path, an ``nn.Module``, or ``None`` for the shipped model.
        tile, tile_overlap: tiling of large frames (see :class:`vidrestore.Restorer`).
        batch_size: frames restored together (one chunk; see the module docstring), and tiles
            per forward pass of the Restorer this builds.
        strength: 0..1, how much of the model's correction is applied (1: all of it, 0: none;
            see :class:`vidrestore.Restorer`).
        correction_floor: 8-bit levels; frames whose correction is about this small (RMS) are
            left nearly alone (0: the model's output as is; see :class:`vidrestore.Restorer`).
        temporal: fuse each frame with its motion-compensated neighbours (no flicker).
        temporal_radius: neighbours on each side; output ``n`` uses source frames
            ``n - temporal_radius .. n + temporal_radius``, never across a scene cut
            (``_SceneChangePrev``/``_SceneChangeNext`` props, or detected as the file pipeline does).
        temporal_strength: 0..1, the neighbours' weight.
        device, precision: as for :class:`vidrestore.Restorer` (``None`` = ``"auto"``).
        num_streams: most Restorer calls running at once (``None``: 1 on CPU, where one call
            already uses every core, 2 on CUDA so transfers overlap compute). VapourSynth's
            ``core.num_threads`` sets how many frames are in flight.
        restorer: a ready :class:`vidrestore.Restorer` (or any callable mapping float32
            ``(N, H, W, 3)`` in [0, 1] to the same) to share between filters; then ``model``,
            ``device``, ``precision``, ``tile``, ``tile_overlap``, ``strength`` and ``correction_floor`` must be left at
            their defaults.
        format: output format (default: the input's), same rules as the input.

    Returns:
        A clip of the same length, frame rate, size and props, in ``clip``'s format (or
        ``format``). Float outputs are not clamped (the generator may overshoot [0, 1] a little);
        integer outputs are clamped and rounded.

    Raises:
        vs.Error: unsupported or variable clip format/size, bad options, model that fails to load.
    """
    if not isinstance(clip, vs.VideoNode):
        raise vs.Error(f"{_NAME}: clip must be a VideoNode, got {type(clip).__name__}")
    in_format = _check_format(clip.format, "the input clip")
    if clip.width == 0 or clip.height == 0:
        raise vs.Error(f"{_NAME}: the input clip has a variable size; resize it to one constant size first")
    core = vs.core.core
    if format is None:
        out_format = in_format
    else:
        try:
            out_format = core.get_video_format(format)
        except (vs.Error, TypeError, ValueError) as exc:
            raise vs.Error(f"{_NAME}: format={format!r} is not a video format ({exc})") from exc
        if out_format.id == 0:
            raise vs.Error(f"{_NAME}: format={format!r} is not a video format")
        _check_format(out_format, "format")
    if clip.width % (1 << out_format.subsampling_w) or clip.height % (1 << out_format.subsampling_h):
        raise vs.Error(f"{_NAME}: {clip.width}x{clip.height} cannot be subsampled as {out_format.name}")
    batch_size = _check_int(batch_size, "batch_size", 1)
    temporal_radius = _check_int(temporal_radius, "temporal_radius", 0)
    if not (isinstance(temporal, (bool, np.bool_)) or (isinstance(temporal, int) and temporal in (0, 1))):
        raise vs.Error(f"{_NAME}: temporal must be True or False (or 1/0), got {temporal!r}")
    if num_streams is not None:
        _check_int(num_streams, "num_streams", 1)
    try:
        config = TemporalConfig(radius=temporal_radius if temporal else 0, strength=float(temporal_strength))
    except (TypeError, ValueError) as exc:
        raise vs.Error(f"{_NAME}: temporal_strength must be a number in [0, 1], got {temporal_strength!r}") from exc

    if restorer is None:
        try:
            restorer = Restorer(
                model, device=device or "auto", precision=precision or "auto",
                tile=tile, tile_overlap=tile_overlap, batch_size=batch_size, strength=strength,
                correction_floor=correction_floor,
            )
        except Exception as exc:  # ModelError, bad options, CUDA missing: all surface as vs.Error
            shipped_model_failed = model is None and isinstance(exc, ModelError)
            hint = " (pass model=PATH to a generator .safetensors)" if shipped_model_failed else ""
            raise vs.Error(f"{_NAME}: could not build the Restorer: {exc}{hint}") from exc
    else:
        if not callable(restorer):
            raise vs.Error(f"{_NAME}: restorer must be a vidrestore.Restorer, got {type(restorer).__name__}")
        given = [name for name, value, default in (
            ("model", model, None), ("device", device, None), ("precision", precision, None),
            ("tile", tile, 512), ("tile_overlap", tile_overlap, 32), ("strength", strength, 1.0),
            ("correction_floor", correction_floor, DEFAULT_CORRECTION_FLOOR)) if value != default]
        if given:
            raise vs.Error(f"{_NAME}: {', '.join(given)} {'belongs' if len(given) == 1 else 'belong'} to the "
                           "Restorer; pass them when building it, not together with restorer=")
    if num_streams is None:
        on_cuda = getattr(getattr(restorer, "device", None), "type", "cpu") == "cuda"
        num_streams = 2 if on_cuda else 1

    width, height, in_family = clip.width, clip.height, in_format.color_family
    rgbs_format = core.get_video_format(vs.RGBS)

    def colour(props: Mapping[str, Any]) -> _Colour:
        return _frame_colour(props, in_family, width, height)

    if in_format.id == rgbs_format.id:
        rgbs = clip
    else:
        rgbs = _convert_per_frame(core, clip, rgbs_format, clip,
                                  lambda props: _to_rgbs_arguments(colour(props), in_family))

    # Frames in flight at once (one per VapourSynth thread, roughly consecutive) need the chunks
    # their windows span; one more keeps the next chunk while the oldest is still being read.
    span = 2 * config.radius + max(core.num_threads, 1)
    stage = _TemporalRestore(
        restorer, num_frames=clip.num_frames, chunk=batch_size, config=config, num_streams=num_streams,
        cache_chunks=math.ceil((span - 1) / batch_size) + 2,
    )
    shifted = [_shifted(rgbs, offset) for offset in range(-stage.reach, stage.reach + 1)]
    restored = core.std.ModifyFrame(rgbs, shifted, stage)

    if out_format.id == rgbs_format.id:
        out = restored
    elif in_family == vs.GRAY and out_format.color_family != vs.GRAY:
        # Luma first, as for GRAY output: R = G = B (neutral chroma), not the model's tinted RGB.
        luma = core.resize.Bicubic(core.std.RemoveFrameProps(restored, props=_RESIZE_PROPS), format=vs.GRAYS,
                                   matrix=_MATRIX_GRAY)
        out = _convert_per_frame(
            core, luma, out_format, clip,
            lambda props: _from_rgbs_arguments(colour(props), in_family, out_format.color_family, width, height),
        )
    elif in_family == out_format.color_family == vs.YUV and (in_format.subsampling_w or in_format.subsampling_h) and (
            (out_format.subsampling_w, out_format.subsampling_h) == (in_format.subsampling_w, in_format.subsampling_h)):
        # Subsampled YUV out at the source's subsampling (any depth: format=vs.YUV420P10 is how
        # 8-bit sources are restored without banding): its own chroma plus the correction.
        out = _with_correction(core, clip, rgbs, restored, colour, out_format)
    else:
        out = _convert_per_frame(
            core, restored, out_format, clip,
            lambda props: _from_rgbs_arguments(colour(props), in_family, out_format.color_family, width, height),
        )
    converted = out
    out = core.std.CopyFrameProps(out, clip)
    if out_format.color_family != in_family:
        out = core.std.CopyFrameProps(out, converted, props=list(_COLOUR_PROPS))
    return out
