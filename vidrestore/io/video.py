"""Decode and encode video through PyAV (FFmpeg), keeping timing, colour, rotation and audio.

Reading: :func:`probe` describes a file (:class:`VideoInfo`); :class:`VideoReader` streams its
first video stream as RGB :class:`Frame` s in presentation order, one at a time (memory does not
grow with clip length). YUV is converted with the stream's own matrix and range; an untagged
matrix is taken as BT.601 up to 1024×576 and BT.709 above (:func:`default_matrix`, as players
guess), an untagged range as limited.
Rotation is reported, never applied to the pixels.

Writing: :class:`VideoWriter` encodes RGB frames with x264, x265 or FFV1 into the container its
suffix names, built under a ``.name.partial.ext`` file renamed into place on success.

- Pixel formats: x264/x265 use 4:2:0 (``yuv420p``, ``yuv420p10le``, x265 also 12-bit), or
  4:4:4 when a dimension is odd (4:2:0 needs even sizes). FFV1 stores RGB losslessly
  (``bgr0`` for 8-bit, ``gbrpNNle`` for 10/12/16-bit), so 8-bit RGB round-trips exactly.
- Colour tags default to limited range and :func:`default_matrix`'s BT.601 (SMPTE 170M) or BT.709.
- Timestamps: given ``pts`` are kept (variable frame rate survives); otherwise frames are spaced
  at ``fps``. Rotation goes in the container's display matrix.
- ``audio_from`` copies every audio stream of another file packet by packet (no re-encode),
  interleaved with the video and cut at the video's end; a codec the container cannot hold is
  transcoded to AAC instead (logged). Its subtitle streams (left out, with a warning, where the
  container cannot hold them), its tags (title; each track's language and title) and chapters
  come along.

Rotation is in degrees counter-clockwise, the convention of FFmpeg's display matrix and of
PyAV's ``VideoFrame.rotation``; the legacy clockwise ``rotate`` tag is converted to it.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

import av
import numpy as np
from av.video.reformatter import Colorspace, Interpolation

from vidrestore import checks
from vidrestore.errors import CorruptMediaError, MediaError, NoVideoStreamError, UnsupportedFormatError
from vidrestore.io._files import make_folder, partial_path, require_file, unidentified_error
from vidrestore.io.listing import VIDEO_ENCODERS

__all__ = ["Frame", "VideoInfo", "VideoReader", "VideoWriter", "check_writer", "probe", "write_video"]

logger = logging.getLogger(__name__)

_VIDEO_SUFFIXES = frozenset(
    ".mp4 .m4v .mov .mkv .webm .avi .ts .mts .m2ts .mpg .mpeg .flv .wmv .3gp .ogv .mxf .nut .y4m".split()
)

# FFmpeg's colour codes (AVColorRange, AVColorSpace, AVColorPrimaries, AVColorTransferCharacteristic).
RANGE_LIMITED = 1
RANGE_FULL = 2
MATRIX_RGB = 0
UNSPECIFIED = 2
BT709 = 1  # same code for matrix, primaries and transfer
SMPTE170M = 6  # BT.601 525-line; same code for matrix, primaries and transfer
# AVColorSpace → swscale's matrix (SWS_CS_*). BT.601's 625 and 525 variants share one matrix.
_SWSCALE_MATRIX = {
    1: Colorspace.ITU709,
    4: Colorspace.FCC,
    5: Colorspace.ITU601,
    6: Colorspace.ITU601,
    7: Colorspace.SMPTE240M,
    9: Colorspace.BT2020,
    10: Colorspace.BT2020,
}
# Exact rounding and full horizontal chroma interpolation halve the RGB error of a YUV round trip
# (0.9 vs 1.7 levels on a gradient) for ~12 ms instead of ~3 ms per 1080p frame; bicubic adds
# nothing measurable on top.
_INTERPOLATION = Interpolation.BILINEAR | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT
# Some conversions are broken with full chroma interpolation in FFmpeg's swscale (4:2:0 to 16-bit
# RGB: 9.5 dB, every 10-bit video's colours ruined); each pair of formats is checked once.
_PLAIN_INTERPOLATION = Interpolation.BILINEAR | Interpolation.ACCURATE_RND
# AVFieldOrder: TT and TB are coded top field first, BB and BT bottom field first.
FIELD_PROGRESSIVE, FIELD_TOP_FIRST, FIELD_BOTTOM_FIRST = 1, (2, 4), (3, 5)
INTERLACED_FIELD_ORDERS = FIELD_TOP_FIRST + FIELD_BOTTOM_FIRST
_interpolations: dict[tuple[str, str], Interpolation] = {}


def _interpolation(source: str, target: str) -> Interpolation:
    """``_INTERPOLATION`` for converting ``source`` to ``target`` pixel format, unless swscale gets
    that conversion wrong with it (checked once per pair on a small colour picture against the
    plain conversion); then the plain one."""
    flags = _interpolations.get((source, target))
    if flags is None:
        y, x = np.mgrid[0:48, 0:64].astype(np.float64)
        picture = np.stack([x / 64, y / 48, 0.5 + 0.4 * np.sin(x / 5 + y / 7)], axis=-1)
        probe = av.VideoFrame.from_ndarray(np.round(picture * 65535).astype(np.uint16), format="rgb48le")
        try:
            probe = probe.reformat(format=source, interpolation=_PLAIN_INTERPOLATION)
            results = [probe.reformat(format=target, interpolation=f).reformat(
                format="rgb48le", interpolation=_PLAIN_INTERPOLATION).to_ndarray().astype(np.float64) / 65535
                for f in (_INTERPOLATION, _PLAIN_INTERPOLATION)]
            agrees = float(np.sqrt(np.mean((results[0] - results[1]) ** 2))) < 0.02  # ~5 levels: same picture
        except (ValueError, OSError, av.FFmpegError):  # swscale reads but cannot write it (pal8, Bayer)
            agrees = True
        flags = _interpolations[(source, target)] = _INTERPOLATION if agrees else _PLAIN_INTERPOLATION
        if not agrees:
            logger.debug("swscale %s -> %s: full chroma interpolation is broken here; using plain", source, target)
    return flags

_PIXEL_FORMATS = {
    "libx264": {8: "yuv420p", 10: "yuv420p10le"},
    "libx265": {8: "yuv420p", 10: "yuv420p10le", 12: "yuv420p12le"},
    "ffv1": {8: "bgr0", 10: "gbrp10le", 12: "gbrp12le", 16: "gbrp16le"},
}


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe` learns about a file's first video stream.

    Attributes:
        frame_count: from the container index, else estimated from duration * fps; 0 if unknown.
        fps: average frame rate (``Fraction(0)`` if unknown).
        time_base: unit of the stream's timestamps, seconds.
        codec, pix_fmt: FFmpeg names ("h264", "yuv420p10le").
        bit_depth: bits per sample of the stored pixels (8, 10, 12, 16).
        color_range, colorspace, color_primaries, color_trc: FFmpeg codes (2 = unspecified,
            except range where 0 is).
        rotation: display rotation, degrees counter-clockwise, one of 0/90/180/270.
        duration: seconds, or None if unknown.
        length_is_estimate: the stream has no length of its own (FLV, NUT), so ``duration`` and
            ``frame_count`` come from the whole file's, which may include audio that outlasts
            the video: an upper bound.
        sample_aspect_ratio: pixel shape (8/9 for NTSC DVD 4:3); ``Fraction(0)`` if unknown (square).
        field_order: FFmpeg's AVFieldOrder: 0 unknown, 1 progressive, 2/4 top field first
            (interlaced), 3/5 bottom field first.
    """

    path: Path
    width: int
    height: int
    frame_count: int
    fps: Fraction
    time_base: Fraction
    codec: str
    pix_fmt: str
    bit_depth: int
    color_range: int
    colorspace: int
    color_primaries: int
    color_trc: int
    rotation: int
    has_audio: bool
    duration: float | None
    length_is_estimate: bool = False
    sample_aspect_ratio: Fraction = Fraction(0)
    field_order: int = 0

    @property
    def interlaced(self) -> bool:
        return self.field_order in INTERLACED_FIELD_ORDERS


@dataclass(frozen=True)
class Frame:
    """One decoded picture.

    Attributes:
        index: position in presentation order, from 0.
        pts: timestamp in units of ``VideoInfo.time_base``, or None if the file has none.
        time: presentation time in seconds.
        rgb: ``(H, W, 3)`` uint8 [0, 255] or uint16 [0, 65535], not rotated.
    """

    index: int
    pts: int | None
    time: float
    rgb: np.ndarray


def probe(path: str | Path) -> VideoInfo:
    """Describe the first video stream of ``path`` without decoding it.

    Raises:
        MediaError: the file is missing.
        CorruptMediaError: empty, truncated or unreadable container.
        UnsupportedFormatError: no video stream, or no decoder for it.
    """
    path = require_file(path)
    container = _open_input(path)
    with container:
        return _describe(path, container)


class VideoReader:
    """Stream the RGB frames of a video file. Use as a context manager; iterate once.

    Args:
        dtype: ``np.uint8`` or ``np.uint16`` for :attr:`Frame.rgb`; None picks uint16 when the
            stream has more than 8 bits per sample, else uint8.
        deinterlace: make interlaced frames progressive with FFmpeg's bwdif (one frame per frame,
            timestamps kept; the field order is the stream's, else each frame's flag): every frame
            of a stream marked interlaced, else only the frames flagged interlaced (progressive
            frames pass untouched).

    A packet that fails to decode is skipped with a warning naming it; a container that is cut
    short ends the iteration early, with a warning when fewer frames came than it announced (and
    :attr:`shortfall` says so after the iteration). A timestamp that does not increase (a damaged
    or concatenated file) moves one frame interval after the previous one, and the frames after
    it keep their spacing (a warning says so). :class:`CorruptMediaError` is raised only if no frame decodes at all.
    """

    def __init__(self, path: str | Path, *, dtype: type[np.unsignedinteger] | np.dtype | None = None,
                 deinterlace: bool = False) -> None:
        self.path = require_file(path)
        self.deinterlace = deinterlace
        self._container = _open_input(self.path)
        try:
            self.info = _describe(self.path, self._container)
        except MediaError:
            self._container.close()
            raise
        self.dtype = np.dtype(dtype if dtype is not None else (np.uint16 if self.info.bit_depth > 8 else np.uint8))
        if self.dtype not in (np.dtype(np.uint8), np.dtype(np.uint16)):
            self._container.close()
            raise ValueError(f"VideoReader: dtype must be uint8 or uint16, got {self.dtype}")
        self._stream = main_video_stream(self._container)
        self._stream.codec_context.thread_type = "AUTO"
        self._started = False
        self.shortfall: str | None = None  # after iterating: why fewer frames came than announced

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exception: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the file. Safe to call twice."""
        self._container.close()

    def __iter__(self) -> Iterator[Frame]:
        if self._started:
            raise RuntimeError(f"{self.path}: a VideoReader is iterated once; open a new one to read again")
        self._started = True
        rgb_format = "rgb48le" if self.dtype == np.uint16 else "rgb24"
        index, last_pts, repaired, offset, last_time, resized = 0, None, 0, 0, 0.0, 0
        # A timestamp that does not increase (a duplicate, or a jump back where files were
        # concatenated) moves to one frame interval after the previous one, and the frames after
        # it keep their spacing (the offset carries on).
        step = max(1, round(1 / (self.info.fps * self.info.time_base))) if self.info.fps and self.info.time_base else 1
        decoded_frames = self._decoded_frames()
        for decoded in self._deinterlaced(decoded_frames) if self.deinterlace else decoded_frames:
            time = decoded.time if decoded.time is not None else (index / self.info.fps if self.info.fps else 0.0)
            pts = decoded.pts if decoded.pts is None else decoded.pts + offset
            if pts is not None and last_pts is not None and pts <= last_pts:
                moved = last_pts + step
                if not repaired:
                    logger.warning("%s: frame %d's timestamp %d does not follow %d; moved to %d with the frames after "
                                   "it (damaged or concatenated file)", self.path, index, pts, last_pts, moved)
                offset, pts, repaired = offset + moved - pts, moved, repaired + 1
            if pts is not None and offset and self.info.time_base:
                time = float(pts * self.info.time_base)
            last_pts = pts if pts is not None else last_pts
            last_time = float(time)
            rgb = _reformat(decoded, rgb_format, "src", decoded.colorspace, decoded.color_range).to_ndarray()
            if rgb.shape[:2] != (self.info.height, self.info.width):  # the size changed mid-stream (joined files)
                if not resized:
                    logger.warning("%s: frame %d is %dx%d, not the stream's %dx%d (joined files?); such frames are "
                                   "scaled to %dx%d", self.path, index, rgb.shape[1], rgb.shape[0], self.info.width,
                                   self.info.height, self.info.width, self.info.height)
                resized += 1
                rgb = _scaled(rgb, self.info.width, self.info.height)
            yield Frame(index, pts, float(time), rgb)
            index += 1
        if index == 0:
            raise CorruptMediaError(self.path, "no frame could be decoded")
        if repaired > 1:
            logger.warning("%s: %d times a timestamp did not increase; frames moved on", self.path, repaired)
        if self._stream.frames:  # the container's index counts the frames
            short = index < self._stream.frames
        else:  # only a duration (Matroska, variable frame rate): judge by time, not by duration × fps
            interval = 1 / float(self.info.fps) if self.info.fps else 0.0
            short = (self.info.duration is not None and not self.info.length_is_estimate
                     and last_time + interval < self.info.duration - 2 * interval)  # > 2 frames' time missing
        if short:
            announced = (f"the {self._stream.frames} announced" if self._stream.frames
                         else f"{self.info.duration:.2f} s announced, the last at {last_time:.2f} s")
            self.shortfall = f"ended after {index} frames of {announced} (truncated file?)"
            logger.warning("%s: %s", self.path, self.shortfall)

    def _deinterlaced(self, frames: Iterator[av.VideoFrame]) -> Iterator[av.VideoFrame]:
        """``frames`` through bwdif (a new graph whenever the frames' size or format changes), with
        the stream's time base back on them."""
        order = self.info.field_order
        parity = "tff" if order in FIELD_TOP_FIRST else "bff" if order in FIELD_BOTTOM_FIRST else "auto"
        which = "all" if self.info.interlaced else "interlaced"  # a progressive stream's unflagged frames pass
        graph: av.filter.Graph | None = None
        shape: tuple[int, int, str] | None = None

        def drained(eof: bool) -> Iterator[av.VideoFrame]:
            assert graph is not None
            if eof:
                graph.push(None)
            while True:
                try:
                    frame = graph.pull()
                except (av.error.BlockingIOError, av.error.EOFError):
                    return
                if frame.pts is not None and frame.time_base != self._stream.time_base:
                    frame.pts = round(frame.pts * Fraction(frame.time_base) / Fraction(self._stream.time_base))
                frame.time_base = self._stream.time_base
                yield frame

        for frame in frames:
            if (frame.width, frame.height, frame.format.name) != shape:
                if graph is not None:
                    yield from drained(eof=True)
                shape = (frame.width, frame.height, frame.format.name)
                graph = av.filter.Graph()
                source = graph.add_buffer(width=frame.width, height=frame.height, format=frame.format,
                                          time_base=self._stream.time_base)
                bwdif = graph.add("bwdif", f"mode=send_frame:parity={parity}:deint={which}")
                sink = graph.add("buffersink")
                source.link_to(bwdif)
                bwdif.link_to(sink)
                graph.configure()
            assert graph is not None
            graph.push(frame)
            yield from drained(eof=False)
        if graph is not None:
            yield from drained(eof=True)

    def _decoded_frames(self) -> Iterator[av.VideoFrame]:
        packets = self._container.demux(self._stream)  # ends with an empty packet that drains the decoder
        for packet_index in itertools.count():
            try:
                packet = next(packets)
            except StopIteration:
                return
            except av.FFmpegError as error:
                logger.warning(
                    "%s: container damaged at packet %d (%s); stopping there", self.path, packet_index, error.strerror
                )
                packet = None
            try:
                frames = self._stream.decode(packet)  # None drains the decoder
            except av.FFmpegError as error:
                # With frame threading the decoder reports an error a few packets late: the index is approximate.
                logger.warning("%s: skipped undecodable packet near %d (%s)", self.path, packet_index, error.strerror)
                frames = []
            yield from frames
            if packet is None:
                return


class VideoWriter:
    """Encode RGB frames into a video file, atomically. Use as a context manager.

    Args:
        width, height: frame size in pixels.
        fps: nominal frame rate, e.g. ``Fraction(30000, 1001)``.
        time_base: unit of the ``pts`` given to :meth:`write`; default ``1 / fps``.
        codec: "libx264" ("h264"), "libx265" ("h265", "hevc") or "ffv1".
        crf: x264/x265 constant rate factor (lower = better; None = encoder default); unused by FFV1.
        preset: x264/x265 speed preset.
        bit_depth: bits per stored sample: 8 or 10 (x265 also 12; FFV1 8, 10, 12, 16).
        color_range, colorspace, color_primaries, color_trc: FFmpeg codes to tag (and convert
            with); None = limited range and :func:`default_matrix`.
        rotation: display rotation, degrees counter-clockwise, a multiple of 90.
        audio_from: a file whose audio and subtitle streams, tags and chapters are copied in.
        sample_aspect_ratio: pixel shape to tag (anamorphic video); 0 or None = square.
        chroma: "420" (default), or "422"/"444" to keep a source's finer chroma (x264, x265).
        field_order: AVFieldOrder to tag; an interlaced one (2-5) also makes x264 code the
            frames as interlaced, top or bottom field first, so players go on deinterlacing them.
        quiet: what is lost on the way (subtitles a container cannot hold, interlacing a codec
            cannot code) is logged at debug level, not as warnings: for the many writers of one
            restoration, after a :func:`check_writer` has warned once.

    Raises:
        UnsupportedFormatError: unknown codec or container, or a bit depth the codec cannot store.
        MediaError: the output cannot be written (also from :meth:`write` and :meth:`close`).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        width: int,
        height: int,
        fps: Fraction,
        time_base: Fraction | None = None,
        codec: str = "libx264",
        crf: float | None = 18,
        preset: str = "medium",
        bit_depth: int = 8,
        color_range: int | None = None,
        colorspace: int | None = None,
        color_primaries: int | None = None,
        color_trc: int | None = None,
        rotation: int = 0,
        audio_from: str | Path | None = None,
        sample_aspect_ratio: Fraction | None = None,
        field_order: int = 0,
        chroma: str = "420",
        quiet: bool = False,
    ) -> None:
        self.path = Path(path)
        if width <= 0 or height <= 0 or fps <= 0 or rotation % 90:
            raise ValueError(
                f"VideoWriter: need positive size and fps and rotation a multiple of 90, "
                f"got {width}x{height} at {fps}, {rotation} degrees"
            )
        fps = Fraction(fps).limit_denominator(1_000_000)  # a float like 29.97 becomes 2997/100
        self.width, self.height = width, height
        self.frames_written = 0
        self._encoder = VIDEO_ENCODERS.get(codec.lower(), "")
        if crf is not None and self._encoder in ("libx264", "libx265"):  # they find out only as they encode
            crf = checks.real(crf, "crf", 0, 51)
        if chroma not in ("420", "422", "444"):
            raise ValueError(f"VideoWriter: chroma must be 420, 422 or 444, got {chroma!r}")
        self._pixel_format = _pixel_format(self.path, self._encoder or codec, bit_depth, width, height, chroma)
        if chroma != "444" and "444" in self._pixel_format and (width % 2 or height % 2):
            _warner(quiet)("%s: %dx%d has an odd side, which %s chroma cannot have: written 4:4:4, which many "
                           "players and browsers do not play (crop or pad the source to even sides for 4:2:0)",
                           self.path, width, height, "4:2:2" if chroma == "422" else "4:2:0")
        self._time_base = Fraction(time_base) if time_base is not None else 1 / fps
        self._frame_step = max(1, round(1 / (fps * self._time_base)))
        self._last_pts: int | None = None
        self._last_dts: int | None = None
        is_rgb = av.VideoFormat(self._pixel_format).is_rgb
        default_tag = default_matrix(width, height)
        self._color_range = (
            RANGE_FULL if is_rgb else color_range if color_range in (RANGE_LIMITED, RANGE_FULL) else RANGE_LIMITED
        )
        self._colorspace = MATRIX_RGB if is_rgb else _tag_or(colorspace, default_tag)
        self._partial = partial_path(self.path)
        self._audio: _AudioCopy | None = None
        make_folder(self.path.parent)
        self._container = _open_output(self.path, self._partial, self._time_base)
        try:
            tags = (_tag_or(color_primaries, default_tag), _tag_or(color_trc, default_tag))
            self._stream = self._add_video_stream(fps, crf, preset, *tags, rotation)
            if sample_aspect_ratio:
                self._stream.codec_context.sample_aspect_ratio = Fraction(sample_aspect_ratio)
            if field_order in INTERLACED_FIELD_ORDERS:
                self._interlace(field_order, _warner(quiet))
            self._audio = (_AudioCopy(Path(audio_from), self._container, quiet=quiet)
                           if audio_from is not None else None)
        except BaseException:
            self.abort()
            raise

    def _add_video_stream(
        self, fps: Fraction, crf: float | None, preset: str, primaries: int, trc: int, rotation: int
    ) -> av.VideoStream:
        try:
            if self.path.suffix.lower() == ".ts" and self._encoder not in ("libx264", "libx265"):
                # MPEG-TS's muxer takes any codec, as a data stream no player shows.
                raise ValueError("not an MPEG-TS video codec")
            stream = self._container.add_stream(self._encoder, rate=fps)
        except ValueError as error:
            raise UnsupportedFormatError(
                self.path, f"{self.path.suffix} files cannot hold {self._encoder} video"
            ) from error
        stream.width, stream.height, stream.pix_fmt = self.width, self.height, self._pixel_format
        stream.time_base = self._time_base
        context = stream.codec_context
        context.time_base = self._time_base
        context.color_range, context.colorspace = self._color_range, self._colorspace
        context.color_primaries, context.color_trc = primaries, trc
        if self._encoder == "ffv1":
            stream.options = {"level": "3", "slicecrc": "1"}
        else:
            stream.options = {"preset": preset} | ({"crf": f"{crf:g}"} if crf is not None else {})
            if self._encoder == "libx264":
                # On AVX-512 CPUs the result of x264's SIMD mb-tree code depends on memory it never
                # wrote, so the same frames encoded differently from run to run (and a resumed
                # restoration differed from an uninterrupted one). cpu-independent swaps in the C
                # versions of the two mb-tree functions; encoding speed did not change measurably.
                stream.options |= {"x264-params": "cpu-independent=1"}
            if self._encoder == "libx265":
                stream.options |= {"x265-params": "log-level=error"}
        if rotation % 360:
            stream.set_display_rotation(rotation % 360)
        return stream

    def _interlace(self, field_order: int, warn: Callable[..., None]) -> None:
        self._stream.codec_context.field_order = field_order
        # x264 codes each field apart: a 4:2:0 field needs an even height, so the frame a multiple of 4.
        rows = 4 if "420" in self._pixel_format else 2
        if self._encoder == "libx264" and self.height % rows:
            warn("%s: %d lines cannot be coded interlaced in %s; coded as progressive frames (players will not "
                 "deinterlace them: deinterlace first)", self.path, self.height, self._pixel_format)
        elif self._encoder == "libx264":
            first = "tff" if field_order in FIELD_TOP_FIRST else "bff"
            self._stream.options = self._stream.options | {
                "x264-params": f"{self._stream.options['x264-params']}:interlaced=1:{first}=1"}
        else:
            warn("%s: %s codes the interlaced source as progressive frames; use libx264 to keep it interlaced",
                 self.path, self._encoder)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exception_type: type[BaseException] | None,
        exception: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exception_type is None:
            self.close()
        else:
            self.abort()

    def write(self, rgb: np.ndarray, pts: int | None = None) -> None:
        """Encode one frame: ``rgb`` ``(height, width, 3)`` uint8 or uint16 (full range).

        ``pts`` is in units of ``time_base`` and must increase; None places the frame one frame
        interval after the previous one (0 for the first).
        """
        if self._container is None:
            raise MediaError(self.path, "the writer is already closed")
        if rgb.shape != (self.height, self.width, 3) or rgb.dtype not in (np.dtype(np.uint8), np.dtype(np.uint16)):
            raise ValueError(
                f"VideoWriter.write: expected ({self.height}, {self.width}, 3) uint8/uint16, "
                f"got {rgb.shape} {rgb.dtype}"
            )
        if pts is None:
            pts = 0 if self._last_pts is None else self._last_pts + self._frame_step
        elif self._last_pts is not None and pts <= self._last_pts:
            raise ValueError(f"VideoWriter.write: timestamps must increase ({pts} after {self._last_pts})")
        frame = av.VideoFrame.from_ndarray(
            np.ascontiguousarray(rgb), format="rgb48le" if rgb.dtype == np.uint16 else "rgb24"
        )
        frame = _reformat(frame, self._pixel_format, "dst", self._colorspace, self._color_range)
        frame.pts, frame.time_base = pts, self._time_base
        self._guarded(lambda: self._encode(frame, pts))
        self._last_pts = pts
        self.frames_written += 1

    def _encode(self, frame: av.VideoFrame | None, pts: int) -> None:
        for packet in self._stream.encode(frame):
            if packet.pts is not None and packet.dts is not None:
                # x265 gives a clip's only frame a decode time from memory it never set (-9e13
                # ticks, or past the frame's own time), which the muxers refuse ("Not yet
                # implemented", "Invalid argument"). A far-early decode time is only repaired there:
                # with more frames it is the encoder's reordering (after a long gap, far early).
                lone = self.frames_written <= 1 and self._last_dts is None
                if (packet.dts > packet.pts or (lone and packet.dts < packet.pts - 64 * self._frame_step)) and (
                        self._last_dts is None or packet.pts > self._last_dts):
                    packet.dts = packet.pts
            self._last_dts = packet.dts
            self._container.mux(packet)
        if self._audio is not None:
            self._audio.copy_until(float(pts * self._time_base))

    def close(self) -> None:
        """Flush the encoders and move the finished file into place. Safe to call twice."""
        if self._container is None:
            return
        if self.frames_written == 0:
            self.abort()
            raise MediaError(self.path, "no frames were written")
        end_pts = self._last_pts + self._frame_step
        self._guarded(lambda: self._encode(None, end_pts))
        self._guarded(self._finish)
        try:
            os.replace(self._partial, self.path)
        except OSError as error:
            self._partial.unlink(missing_ok=True)
            raise MediaError(self.path, f"could not move the finished file into place: {error.strerror}") from error

    def _finish(self) -> None:
        if self._audio is not None:
            self._audio.finish()
        self._container.close()
        self._container = None

    def abort(self) -> None:
        """Stop without producing the output: close everything and delete the partial file."""
        _discard_partial(self.path, self._partial, self._audio, self._container)
        self._container = None

    def _guarded(self, action: Callable[[], None]) -> None:
        """Run an encoding step; on a codec or disk error, abort and raise :class:`MediaError`."""
        try:
            action()
        except (av.FFmpegError, OSError) as error:
            self.abort()
            raise MediaError(self.path, f"encoding failed: {getattr(error, 'strerror', None) or error}") from error


def write_video(path: str | Path, frames: Iterable[Frame | np.ndarray], info: VideoInfo, **options: Any) -> int:
    """Encode ``frames`` to ``path`` with the timing, rotation, colour tags and audio of ``info``.

    Frames' own ``pts`` (in ``info.time_base``) are kept, so variable frame rate survives; plain
    arrays are spaced at ``info.fps``. Size comes from the first frame (restored frames may be
    larger than the source). ``options`` override any :class:`VideoWriter` argument
    (``bit_depth`` defaults to 8 for 8-bit sources, 10 otherwise). Returns the frame count.
    """
    writer: VideoWriter | None = None
    try:
        for item in frames:
            rgb, pts = (item.rgb, item.pts) if isinstance(item, Frame) else (item, None)
            if writer is None:
                writer = VideoWriter(path, **(_writer_settings(info, rgb.shape[1], rgb.shape[0]) | options))
            writer.write(rgb, pts)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    if writer is None:
        raise MediaError(Path(path), "no frames to write")
    writer.close()
    return writer.frames_written


def check_writer(path: str | Path, info: VideoInfo, **options: Any) -> None:
    """Raise what :func:`write_video` ``(path, frames, info, **options)`` would raise for its
    codec, container, bit depth and audio — before any frame is made — and write nothing."""
    VideoWriter(path, **(_writer_settings(info, info.width, info.height) | options)).abort()


def _writer_settings(info: VideoInfo, width: int, height: int) -> dict[str, Any]:
    """:class:`VideoWriter` arguments that carry ``info``'s timing, colour, rotation and audio."""
    return {
        "width": width,
        "height": height,
        "fps": info.fps,
        "time_base": info.time_base,
        "bit_depth": 8 if info.bit_depth <= 8 else 10,
        # An RGB source's range tag (always full) says nothing about the YUV we write.
        "color_range": info.color_range if info.colorspace != MATRIX_RGB else None,
        "colorspace": info.colorspace,
        "color_primaries": info.color_primaries,
        "color_trc": info.color_trc,
        "rotation": info.rotation,
        "audio_from": info.path,  # audio, subtitles, tags and chapters
        "sample_aspect_ratio": info.sample_aspect_ratio,
        "field_order": info.field_order,
    }


def chroma_of(pix_fmt: str) -> str:
    """A YUV source's chroma subsampling as "420", "422" or "444" ("420" for anything else)."""
    try:
        fmt = av.VideoFormat(pix_fmt, 16, 16)
    except (ValueError, av.FFmpegError):
        return "420"
    if fmt.is_rgb or len(fmt.components) < 3 or fmt.name.startswith(("gray", "ya")):
        return "420"
    chroma = fmt.components[1]
    if (chroma.width, chroma.height) == (fmt.width, fmt.height):
        return "444"
    return "422" if chroma.height == fmt.height else "420"


def join_videos(parts: list[Path], path: str | Path, *, rotation: int = 0, audio_from: str | Path | None = None,
                transcode_audio: bool = False, quiet: bool = False) -> int:
    """Join video files encoded one after another with the same settings (segments of one
    restoration) into ``path``, packet by packet (no re-encode), atomically.

    Each part must start with a keyframe and hold the timestamps it should have in the joined
    file (as :func:`write_video` keeps the source's). The stream parameters (codec, size, pixel
    format, colour tags) come from the first part; ``rotation`` goes in the display matrix and
    ``audio_from``'s audio is interleaved as :class:`VideoWriter` does (``transcode_audio``: as
    AAC, for audio the container's muxer refuses to copy; ``quiet`` as for :class:`VideoWriter`).
    Returns the packet count.
    """
    path = Path(path)
    if not parts:
        raise MediaError(path, "no segments to join")
    partial = partial_path(path)
    packets, last_dts, end, first_shape = 0, None, 0.0, None
    with _open_input(Path(parts[0])) as first:
        time_base = Fraction(first.streams.video[0].time_base)
    output = _open_output(path, partial, time_base)
    audio: _AudioCopy | None = None
    try:
        try:
            for index, part in enumerate(parts):
                container = _open_input(Path(part))
                try:
                    source = container.streams.video[0]
                    shape = (source.codec_context.name, source.codec_context.width, source.codec_context.height,
                             source.codec_context.format.name if source.codec_context.format else None)
                    if index and shape != first_shape:  # e.g. segments left by another version's run
                        raise MediaError(Path(part), f"segment is {shape}, the first one {first_shape}: "
                                                     "not one restoration's segments")
                    if index == 0:
                        first_shape = shape
                        stream = output.add_stream_from_template(source)
                        stream.time_base = source.time_base
                        # The template leaves the frame rate unset: Matroska would then store no
                        # default frame duration and read back as 1000 fps.
                        stream.codec_context.framerate = _frame_rate(source)
                        if rotation % 360:
                            stream.set_display_rotation(rotation % 360)
                        audio = (_AudioCopy(Path(audio_from), output, transcode=transcode_audio, quiet=quiet)
                                 if audio_from is not None else None)
                    segment = [packet for packet in container.demux(source) if packet.size]  # drop the flush packet
                    _fill_decode_timestamps(segment, Path(part))
                    if last_dts is not None and segment and segment[0].dts * segment[0].time_base <= last_dts:
                        # The encoder extrapolates a segment's first decode times backwards from the
                        # frame steps after its start: after a longer step (variable frame rate, a
                        # dropped frame) they reach into the previous segment. Its pts stand.
                        _fill_decode_timestamps(segment, Path(part), replace=True)
                    for packet in segment:
                        if last_dts is not None and packet.dts * packet.time_base <= last_dts:
                            raise MediaError(Path(part), "segment timestamps overlap the previous segment's")
                        last_dts = packet.dts * packet.time_base
                        end = max(end, float((packet.pts + (packet.duration or 0)) * packet.time_base))
                        if audio is not None:
                            audio.copy_until(float(packet.pts * packet.time_base))
                        packet.stream = stream
                        output.mux(packet)
                        packets += 1
                finally:
                    container.close()
            if audio is not None:
                audio.copy_until(end)  # as VideoWriter: audio past the video's end is left out
                audio.finish()
                audio = None
            output.close()
        except (av.FFmpegError, OSError) as error:
            raise MediaError(path, f"joining segments failed: {getattr(error, 'strerror', None) or error}") from error
        os.replace(partial, path)
    except BaseException:
        _discard_partial(path, partial, audio, output)
        raise
    return packets


def _open_output(path: Path, partial: Path, time_base: Fraction) -> av.container.OutputContainer:
    """Open ``partial`` to write ``path``'s container, for a video stream in ``time_base``.

    MP4/MOV store where a stream starts in the movie time scale, 1/1000 s by default: a segment
    that starts after 0 would move by up to 1 ms and no longer meet its neighbours exactly. Both
    time scales are set to the one FFmpeg picks for the video track (other muxers ignore them).
    """
    scale = time_base.denominator
    while scale < 10000:
        scale *= 2
    options = {"video_track_timescale": str(scale), "movie_timescale": str(scale)}
    try:
        return av.open(str(partial), "w", container_options=options)
    except (av.FFmpegError, ValueError) as error:
        raise UnsupportedFormatError(path, f"no container format for suffix {path.suffix!r}") from error


def _discard_partial(path: Path, partial: Path, *closeables: Any) -> None:
    """Close what writes ``path``'s partial file (errors only logged: the file is being thrown
    away) and delete it."""
    for closeable in closeables:
        try:
            if closeable is not None:
                closeable.close()
        except (av.FFmpegError, OSError) as error:
            logger.debug("%s: error while discarding the partial file: %s", path, error)
    partial.unlink(missing_ok=True)


def _fill_decode_timestamps(packets: list[av.Packet], path: Path, *, replace: bool = False) -> None:
    """Give every packet of a segment (in decode order) a decode timestamp (``replace``: new ones
    for all). Matroska stores only presentation times, so its demuxer leaves some packets' dts
    unset when frames are reordered (B-frames); the muxer then cannot order two joined segments.
    With ``delay`` the deepest
    reordering in the segment (in frames), the ``i``-th dts becomes the ``(i - delay)``-th smallest
    pts and the first ``delay`` packets take the ticks just before the segment's first pts: no dts
    exceeds its pts, and none reaches back into the previous segment (a shift by time instead of
    by frames did, when millisecond rounding made one frame step longer than another)."""
    if any(packet.pts is None for packet in packets):
        raise MediaError(path, "a segment packet has no timestamp")
    if not replace and all(packet.dts is not None for packet in packets):
        return
    ordered = sorted(packet.pts for packet in packets)
    rank = {pts: index for index, pts in enumerate(ordered)}
    delay = max((index - rank[packet.pts] for index, packet in enumerate(packets)), default=0)
    decode_times = [ordered[0] - delay + index for index in range(delay)] + ordered
    for index, packet in enumerate(packets):
        packet.dts = decode_times[index]


_USUAL_LAYOUTS = {1: "mono", 2: "stereo", 6: "5.1", 8: "7.1"}


def _warner(quiet: bool) -> Callable[..., None]:
    """How a writer reports what it cannot keep: a warning, or (``quiet``) a debug line."""
    return logger.debug if quiet else logger.warning


# Tags a muxer writes itself, or that describe the source file rather than its content.
_UNCOPIED_TAGS = ("encoder", "major_brand", "minor_version", "compatible_brands", "duration", "number_of_",
                  "_statistics", "bps", "rotate")


def _copy_tags(source: Any, target: Any) -> None:
    for key, value in source.metadata.items():
        if not key.lower().startswith(_UNCOPIED_TAGS):
            target.metadata[key] = value


class _AudioCopy:
    """Feeds the audio and subtitle streams of a source file into an output container, in step
    with the video, with their tags (language, title), the file's tags (title) and its chapters."""

    def __init__(self, source: Path, output: av.container.OutputContainer, *, transcode: bool = False,
                 quiet: bool = False) -> None:
        source = require_file(source)
        self._output = output
        self._input = _open_input(source, require_video=False)
        self._tracks: dict[int, tuple[av.stream.Stream, av.stream.Stream, bool]] = {}
        _copy_tags(self._input, output)
        if self._input.streams.video and output.streams.video:  # the video track's language, title
            restored = main_video_stream(self._input)
            _copy_tags(restored, output.streams.video[0])
            for other in self._input.streams.video:
                if other is not restored:
                    cover = other.disposition & av.stream.Disposition.attached_pic
                    _warner(quiet)("%s: %s (stream %d) is left out: only one video stream is restored (stream %d)",
                                   source, "the cover picture" if cover else "another video stream", other.index,
                                   restored.index)
        chapters = self._input.chapters()
        if chapters:
            output.set_chapters(chapters)
        for stream in self._input.streams.audio:
            try:
                if transcode:
                    raise ValueError("asked to transcode")
                copy = output.add_stream_from_template(stream)
                channels = stream.layout.nb_channels
                if stream.layout.name == f"{channels} channels" and channels in _USUAL_LAYOUTS:
                    # An unlabelled layout (AVI, WAV captures): MP4's muxer refuses it when it
                    # writes the header, after the whole restoration. Label it the usual way.
                    copy.codec_context.layout = _USUAL_LAYOUTS[channels]
                self._tracks[stream.index] = (stream, copy, False)
            except ValueError:
                logger.info(
                    "%s: %s audio does not fit this container; transcoding it to AAC", source, stream.codec_context.name
                )
                self._tracks[stream.index] = (
                    stream,
                    output.add_stream("aac", rate=stream.rate, layout=f"{stream.layout.nb_channels}c", format="fltp"),
                    True,
                )
            _copy_tags(stream, self._tracks[stream.index][1])
        for stream in self._input.streams.subtitles:
            try:
                if Path(output.name).suffix.lower() == ".ts":  # MPEG-TS takes only DVB subtitles: text became a data stream
                    raise ValueError("text subtitles do not fit MPEG-TS")
                self._tracks[stream.index] = (stream, output.add_stream_from_template(stream), False)
                _copy_tags(stream, self._tracks[stream.index][1])
            except ValueError:
                suffix = Path(output.name).suffix
                hint = ("convert it to SRT or ASS first (ffmpeg -c:s srt)" if suffix.lower() in (".mkv", ".mka")
                        else "write .mkv to keep it" if stream.codec_context.name != "mov_text"
                        else "write .mp4 or .mov to keep it")
                _warner(quiet)("%s: subtitle stream %d (%s) cannot go into %s files and is left out; %s",
                               source, stream.index, stream.codec_context.name, suffix, hint)
        self._packets = (self._input.demux(*(self._input.streams[i] for i in self._tracks)) if self._tracks
                         else iter(()))
        self._pending: av.Packet | None = None
        self._shifts: dict[int, int] = {}  # stream index -> ticks added after its timestamps jumped back
        self._last: dict[int, tuple[int, int]] = {}  # stream index -> (dts, duration) of its last packet
        self._source = source

    def copy_until(self, end: float) -> None:
        """Write the source's audio that starts before ``end`` seconds."""
        while True:
            if self._pending is None:
                self._pending = next(self._packets, None)
                if self._pending is None:
                    return
                self._follow_on(self._pending)
            packet = self._pending
            if packet.pts is not None and packet.pts * packet.time_base >= end:
                return
            self._pending = None
            if packet.dts is not None:  # demux ends with empty flush packets
                self._write(packet)

    def _follow_on(self, packet: av.Packet) -> None:
        """Timestamps that do not increase (files joined end to end, a damaged stream) move on to
        where the stream's previous packet ended, and the packets after them keep their spacing —
        as the video reader does with frames; a muxer refuses them as they are."""
        if packet.dts is None or packet.pts is None:
            return
        index = packet.stream.index
        shift = self._shifts.get(index, 0)
        last = self._last.get(index)
        # Subtitles may share a start time (a sign and a line of dialogue); other streams may not.
        subtitle = packet.stream.type == "subtitle"
        if last is not None and (packet.dts + shift < last[0] or (packet.dts + shift == last[0] and not subtitle)):
            moved = shift
            shift = last[0] + max(last[1], 1) - packet.dts
            self._shifts[index] = shift
            if not moved:
                logger.warning("%s: %s stream %d's timestamps jump back at %.3f s (damaged or concatenated file); it "
                               "carries on from there", self._source, packet.stream.type, index,
                               float((last[0] + max(last[1], 1)) * packet.time_base))
        packet.dts, packet.pts = packet.dts + shift, packet.pts + shift
        self._last[index] = (packet.dts, packet.duration or 0)

    def _write(self, packet: av.Packet) -> None:
        source_stream, output_stream, transcode = self._tracks[packet.stream.index]
        if not transcode:
            packet.stream = output_stream
            self._output.mux(packet)
            return
        for frame in source_stream.decode(packet):
            self._output.mux(output_stream.encode(frame))

    def finish(self) -> None:
        """Drain transcoders (audio past the video's end is left out) and close the source."""
        for _, output_stream, transcode in self._tracks.values():
            if transcode:
                self._output.mux(output_stream.encode(None))
        self.close()

    def close(self) -> None:
        self._input.close()


def _open_input(path: Path, *, require_video: bool = True) -> av.container.InputContainer:
    """Open a container for reading, mapping FFmpeg's errors to ours."""
    try:
        container = av.open(str(path))
    except av.InvalidDataError as error:
        raise unidentified_error(path, _VIDEO_SUFFIXES, "video") from error
    except av.FFmpegError as error:
        raise CorruptMediaError(path, f"cannot open container ({error.strerror})") from error
    if require_video and not container.streams.video:
        container.close()
        raise NoVideoStreamError(path, "has no video stream")
    return container


def main_video_stream(container: av.container.InputContainer) -> av.VideoStream:
    """The video stream restored: the first that is not cover art (an attached picture, which
    MP4 and MKV files of music videos and podcasts carry as a one-frame "video" stream)."""
    moving = [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
    return (moving or list(container.streams.video))[0]


def _frame_rate(stream: av.VideoStream) -> Fraction | None:
    """The stream's average frame rate, or FFmpeg's guess where the container has none — or an
    absurd one: raw DV reads as 60000 fps (its time base), which made a whole clip "truncated"
    and was written into the restored file."""
    average, guessed = stream.average_rate, stream.guessed_rate
    if average and guessed and average > 1000 >= guessed:
        return Fraction(guessed)
    return Fraction(average or guessed) if (average or guessed) else None


def _describe(path: Path, container: av.container.InputContainer) -> VideoInfo:
    stream = main_video_stream(container)
    context = stream.codec_context
    if context is None or context.format is None:
        raise UnsupportedFormatError(path, "no decoder for this video codec or pixel format")
    fps = _frame_rate(stream) or Fraction(0)
    time_base = Fraction(stream.time_base or 0)
    # Matroska has no per-stream duration, but FFmpeg and mkvmerge write one as a tag; the
    # container's duration also counts audio that outlasts the video.
    duration = float(stream.duration * time_base) if stream.duration else _tag_seconds(stream.metadata)
    length_is_estimate = False
    if duration is None and container.duration:
        duration = container.duration / av.time_base
        length_is_estimate = len(container.streams) > 1
    return VideoInfo(
        path=path,
        width=context.width,
        height=context.height,
        frame_count=stream.frames or (round(duration * fps) if duration else 0),
        fps=fps,
        time_base=time_base,
        codec=context.name,
        pix_fmt=context.format.name,
        bit_depth=max(component.bits for component in context.format.components),
        color_range=context.color_range,
        colorspace=context.colorspace,
        color_primaries=context.color_primaries,
        color_trc=context.color_trc,
        rotation=_rotation(stream),
        has_audio=bool(container.streams.audio),
        duration=duration,
        length_is_estimate=length_is_estimate,
        sample_aspect_ratio=_sample_aspect_ratio(stream),
        field_order=int(getattr(context, "field_order", 0) or 0) or _first_frame_field_order(path),
    )


def _first_frame_field_order(path: Path) -> int:
    """Where the container does not say (raw DV), whether the first decoded frame is flagged
    interlaced: 3 (bottom field first) for DV, whose fields always come in that order, 2 (top field
    first, HD's) for others — PyAV does not show a frame's field order —, 0 progressive or unknown."""
    try:
        with av.open(str(path)) as container:
            stream = main_video_stream(container)
            frame = next(container.decode(stream), None)
            codec = stream.codec_context.name
    except (av.FFmpegError, OSError, ValueError):
        return 0
    if frame is None or not frame.interlaced_frame:
        return 0
    return FIELD_BOTTOM_FIRST[0] if codec == "dvvideo" else FIELD_TOP_FIRST[0]


def _sample_aspect_ratio(stream: av.VideoStream) -> Fraction:
    """The container's pixel shape, else the codec's; ``Fraction(0)`` when neither says (square)."""
    for ratio in (stream.sample_aspect_ratio, stream.codec_context.sample_aspect_ratio):
        if ratio is not None and ratio.numerator > 0 and ratio.denominator > 0:
            return Fraction(ratio.numerator, ratio.denominator)
    return Fraction(0)


def _tag_seconds(metadata: dict[str, str]) -> float | None:
    """Seconds from a Matroska ``DURATION`` tag ("00:01:02.250000000"), or None."""
    tag = metadata.get("DURATION") or metadata.get("DURATION-eng") or ""
    try:
        hours, minutes, seconds = tag.split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except ValueError:
        return None


def _rotation(stream: av.VideoStream) -> int:
    """Display rotation in degrees counter-clockwise (0/90/180/270), as FFmpeg's av_display_rotation_get."""
    matrix = stream.codec_context.coded_side_data.get("display_matrix")
    if matrix and len(matrix) >= 36:
        m = struct.unpack("=9i", matrix[:36])
        column_scale, row_scale = math.hypot(m[0], m[3]), math.hypot(m[1], m[4])
        if column_scale and row_scale:
            degrees = -math.degrees(math.atan2(m[1] / row_scale, m[0] / column_scale))
            return round(degrees / 90) * 90 % 360
    rotate_tag = stream.metadata.get("rotate", "0")  # legacy tag, clockwise
    return -round(float(rotate_tag) / 90) * 90 % 360 if rotate_tag.lstrip("-").isdigit() else 0


def _tag_or(value: int | None, default: int) -> int:
    """``value`` unless it is None, "unspecified" (2) or reserved (0) as a matrix/primaries/transfer code.

    (A matrix of 0 means RGB, which never describes YUV output, so it too takes the default.)
    """
    return default if value in (None, 0, UNSPECIFIED) else value


def _pixel_format(path: Path, encoder: str, bit_depth: int, width: int, height: int, chroma: str = "420") -> str:
    """The pixel format for ``encoder`` at ``bit_depth``: 4:2:0, or ``chroma`` ("422", "444": a
    source's own) where the encoder has it; 4:4:4 instead of 4:2:0 for odd sizes."""
    if encoder not in _PIXEL_FORMATS:
        raise UnsupportedFormatError(path, f"unknown video codec {encoder!r}; use one of {sorted(VIDEO_ENCODERS)}")
    pixel_format = _PIXEL_FORMATS[encoder].get(bit_depth)
    if pixel_format is None:
        raise UnsupportedFormatError(
            path, f"{encoder} cannot store {bit_depth}-bit video (it can: {sorted(_PIXEL_FORMATS[encoder])})"
        )
    if chroma != "420" and "420" in pixel_format:
        pixel_format = pixel_format.replace("420", chroma)
    if (width % 2 or height % 2) and ("420" in pixel_format or "422" in pixel_format):
        pixel_format = pixel_format.replace("420", "444").replace("422", "444")
    if encoder not in av.codecs_available or pixel_format not in {
        f.name for f in av.Codec(encoder, "w").video_formats or ()
    }:
        raise UnsupportedFormatError(path, f"this FFmpeg build's {encoder} cannot encode {pixel_format}")
    return pixel_format


def default_matrix(width: int, height: int) -> int:
    """The matrix (FFmpeg/ITU code) assumed for untagged YUV of this size: BT.601 (SMPTE 170M)
    up to 1024×576, BT.709 above — as players guess (mpv: HD by width or height), so 1280×536
    scope HD is BT.709. The VapourSynth filter uses the same rule."""
    return BT709 if width > 1024 or height > 576 else SMPTE170M


def _scaled(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """``rgb`` (H, W, 3) resized to ``width``×``height``: area averaging down, bicubic up."""
    import cv2

    shrinking = width * height < rgb.shape[0] * rgb.shape[1]
    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)


def _reformat(
    frame: av.VideoFrame, pixel_format: str, yuv_side: Literal["src", "dst"], matrix: int, color_range: int
) -> av.VideoFrame:
    """Convert ``frame`` to ``pixel_format``, reading (``src``) or making (``dst``) YUV as ``matrix``/``color_range``.

    Untagged values fall back to :func:`default_matrix` and limited range.
    RGB-to-RGB conversions ignore them.
    """
    yuv_format = frame.format if yuv_side == "src" else av.VideoFormat(pixel_format)
    interpolation = _interpolation(frame.format.name, pixel_format)
    if yuv_format.is_rgb:
        return frame.reformat(format=pixel_format, interpolation=interpolation)
    fallback = _SWSCALE_MATRIX[default_matrix(frame.width, frame.height)]
    return frame.reformat(
        format=pixel_format,
        interpolation=interpolation,
        **{
            f"{yuv_side}_colorspace": _SWSCALE_MATRIX.get(matrix, fallback),
            f"{yuv_side}_color_range": color_range if color_range in (RANGE_LIMITED, RANGE_FULL) else RANGE_LIMITED,
        },
    )
