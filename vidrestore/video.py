"""Video restoration: decode → batched, tiled generator → temporal consistency → encode.

Decoding and encoding run on their own threads, connected by bounded queues, so memory stays
bounded (a few batches of frames, never the clip) and the generator never waits on the codecs
longer than it must. Frame timestamps, frame rate, time base, rotation, colour tags, bit depth
(10-bit stays 10-bit where the codec allows) and audio are carried from the source.

The temporal *checks*: for every frame the flicker left after undoing motion
(:func:`vidrestore.temporal.temporal_error`, 8-bit levels) is measured; frames where it spikes
above 3× the running median are logged, and the clip's mean is reported at the end.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import queue
import shutil
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from vidrestore import checks
from vidrestore.errors import MediaError, UnsupportedFormatError
from vidrestore.io import Frame, VideoInfo, VideoReader, check_writer, from_float, probe, to_float, write_video
from vidrestore.io.video import FIELD_PROGRESSIVE, FIELD_TOP_FIRST, chroma_of
from vidrestore.io._files import FolderInUse, atomic_output, hold_folder, make_folder
from vidrestore.io.video import join_videos
from vidrestore.temporal import TemporalConfig, fuse_window, is_scene_cut, luma_u8, temporal_error

__all__ = ["VideoReport", "restore_frames", "restore_video"]

log = logging.getLogger(__name__)
_END = object()


@dataclass
class VideoReport:
    frames: int = 0
    seconds: float = 0.0
    temporal_errors: list[float] = field(default_factory=list)
    spikes: list[int] = field(default_factory=list)
    scene_cuts: list[int] = field(default_factory=list)
    incomplete: str | None = None  # the source ended before the frames it announced: why

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def flicker(self) -> float:
        """Mean per-frame temporal error of the output (8-bit levels)."""
        return float(np.mean(self.temporal_errors)) if self.temporal_errors else 0.0


@dataclass
class _Slot:
    frame: Frame
    restored: np.ndarray  # float32 (H, W, 3)
    luma: np.ndarray
    cut_before: bool


def _batches(frames: Iterable[Frame], size: int) -> Iterator[list[Frame]]:
    batch: list[Frame] = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def restore_frames(
    frames: Iterable[Frame],
    restorer: Any,
    *,
    temporal: TemporalConfig | None = TemporalConfig(),
    batch_size: int = 4,
    report: VideoReport | None = None,
    start: int = 0,
) -> Iterator[Frame]:
    """Restore a stream of frames; yields frames (same index, pts, dtype) in order.

    Output ``n`` depends on input frames ``n-radius..n+radius`` only. Frames whose index is below
    ``start`` are restored as context for their neighbours but neither yielded nor reported (a
    resumed job passes its first ``radius`` frames before ``start``).
    """
    batch_size = checks.integer(batch_size, "batch_size", 1)  # 0 never closed a batch: the whole video in one call
    report = report if report is not None else VideoReport()
    radius = temporal.radius if temporal is not None and temporal.strength > 0 else 0
    window: deque[_Slot] = deque()
    next_out = 0  # index into the stream of the next frame to emit
    first_index = 0  # stream position of window[0]
    previous: tuple[np.ndarray, np.ndarray] | None = None  # (output float, its stream position)
    running: deque[float] = deque(maxlen=50)

    def emit(center_pos: int) -> Frame | None:
        nonlocal previous
        center = center_pos - first_index
        if window[center].frame.index < start:
            return None
        low, high = max(0, center - radius), min(len(window) - 1, center + radius)
        slots = [window[i] for i in range(low, high + 1)]
        fields: dict[int, np.ndarray] = {}
        if radius:
            cuts = [slots[i + 1].cut_before for i in range(len(slots) - 1)]
            out = fuse_window([s.restored for s in slots], center - low, cuts=cuts, config=temporal,
                              lumas=[s.luma for s in slots], fields=fields)
        else:
            out = slots[center - low].restored
        slot = slots[center - low]
        if previous is not None and not slot.cut_before:
            field_to_prev = fields.get(center - low - 1)
            if field_to_prev is None:
                from vidrestore.temporal import flow

                field_to_prev = flow(slot.luma, luma_u8(previous))
            error = temporal_error(previous, out, field_to_prev)
            baseline = float(np.median(running)) if len(running) >= 5 else None
            if baseline is not None and error > 3.0 * max(baseline, 0.25):
                report.spikes.append(slot.frame.index)
                log.warning("frame %d: temporal error %.2f (running median %.2f)", slot.frame.index, error, baseline)
            running.append(error)
            report.temporal_errors.append(error)
        previous = out
        report.frames += 1
        return Frame(index=slot.frame.index, pts=slot.frame.pts, time=slot.frame.time,
                     rgb=from_float(out, slot.frame.rgb.dtype))

    cut_config = temporal or TemporalConfig()
    last_input: np.ndarray | None = None  # not window[-1]: with radius 0 the window empties between batches
    for batch in _batches(frames, batch_size):
        inputs = [to_float(f.rgb) for f in batch]
        restored = restorer(np.stack(inputs))
        for frame, current, image in zip(batch, inputs, restored):
            cut = last_input is not None and is_scene_cut(last_input, current, threshold=cut_config.cut_threshold,
                                                          correlation=cut_config.cut_correlation)
            last_input = current
            if cut:
                report.scene_cuts.append(frame.index)
            window.append(_Slot(frame, np.ascontiguousarray(image), luma_u8(image), cut))
        # Emit every frame whose right-hand neighbours have arrived.
        while next_out + radius < first_index + len(window):
            if (out := emit(next_out)) is not None:
                yield out
            next_out += 1
            while next_out - radius > first_index:
                window.popleft()
                first_index += 1
    while next_out < first_index + len(window):
        if (out := emit(next_out)) is not None:
            yield out
        next_out += 1


def _threaded(iterable: Iterable[Any], depth: int) -> Iterator[Any]:
    """Run ``iterable`` on a thread, handing items over through a bounded queue.

    Closing the generator (or an exception in the consumer) stops the thread and *joins* it
    before returning, so the caller may then close what the thread was reading (a PyAV
    container closed under a decoding thread crashes the process).
    """
    items: queue.Queue[Any] = queue.Queue(maxsize=depth)
    failure: list[BaseException] = []
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def pump() -> None:
        try:
            for item in iterable:
                if not put(item):
                    return
        except BaseException as exc:  # re-raised in the consumer
            failure.append(exc)
        finally:
            put(_END)

    thread = threading.Thread(target=pump, daemon=True, name="vidrestore-decode")
    thread.start()
    try:
        while (item := items.get()) is not _END:
            yield item
        if failure:
            raise failure[0]
    finally:
        stop.set()
        thread.join()


def restore_video(
    source: str | Path,
    target: str | Path,
    restorer: Any,
    *,
    codec: str = "libx264",
    crf: float = 18,
    preset: str = "medium",
    temporal: bool = True,
    temporal_strength: float = 1.0,
    temporal_radius: int = 2,
    bit_depth: int | None = None,
    chroma: str = "420",
    batch_size: int = 4,
    segment_frames: int = 250,
    resume: bool = True,
    progress: bool = True,
    deinterlace: bool = False,
) -> VideoReport:
    """Restore ``source`` into ``target``: never a half-written ``target``, and a crash loses at
    most one segment of work.

    Restored frames are encoded in segments of ``segment_frames`` frames (each starts with a
    keyframe) into a work folder beside the target, ``.NAME.parts/``; each segment is written
    atomically. When the last one is done they are joined into ``target`` packet by packet (no
    re-encode), the source's audio is interleaved, and the folder is removed. Run the same job
    again after a crash or Ctrl-C and it continues after the last finished segment — the restored
    frames are bitwise those of an uninterrupted run (and so are the encoded ones with libx264 or
    FFV1 on the same machine; x265 is not deterministic), as output ``n`` depends only on inputs
    ``n-radius..n+radius`` and the engine's result does not depend on batching. The folder records
    the source (path, size, modification time), the restorer's ``fingerprint`` and every
    setting; if any differs, or ``resume`` is False, or the restorer has no fingerprint, it
    starts over. The report covers the frames restored in this run.

    ``chroma``: the output's chroma subsampling with x264/x265, "420" (plays everywhere), "422",
    "444", or "source" to keep a 4:2:2/4:4:4 source's (4:1:1 DV becomes 4:2:2).

    ``deinterlace``: each frame is made progressive with FFmpeg's bwdif before it is restored
    (same frames, same timestamps), and written progressive. Without it an interlaced source is
    restored as whole frames, both fields together, and written interlaced.
    """
    source, target = Path(source), Path(target)
    segment_frames = checks.integer(segment_frames, "segment_frames", 1)
    batch_size = checks.integer(batch_size, "batch_size", 1)
    info = probe(source)
    if deinterlace:  # the frames restored and written are progressive ones
        info = dataclasses.replace(info, field_order=FIELD_PROGRESSIVE)
    elif info.interlaced:
        log.warning("%s: interlaced (%s field first): restored as whole frames, written interlaced by libx264; "
                    "--deinterlace (deinterlace=True) restores and writes progressive frames, for a better result",
                    source, "top" if info.field_order in FIELD_TOP_FIRST else "bottom")
    config = TemporalConfig(radius=temporal_radius, strength=temporal_strength) if temporal else None
    radius = config.radius if config is not None and config.strength > 0 else 0
    report = VideoReport()
    if chroma not in ("420", "422", "444", "source"):
        raise ValueError(f"chroma must be 420, 422, 444 or source, got {chroma!r}")
    source_chroma = chroma_of(info.pix_fmt)
    options: dict[str, Any] = {"codec": codec, "crf": crf, "preset": preset,
                               "chroma": source_chroma if chroma == "source" else chroma}
    if chroma == "420" and source_chroma != "420":
        log.info("%s: %s source written 4:2:0 (plays everywhere); --chroma source keeps its chroma", source,
                 info.pix_fmt)
    elif chroma == "source" and info.pix_fmt.startswith("yuv411"):
        log.info("%s: 4:1:1 (DV) cannot be coded by x264/x265; written 4:2:2, which keeps all its chroma", source)
    if bit_depth is not None:
        options["bit_depth"] = bit_depth
    if codec in ("ffv1",) and info.bit_depth <= 8:
        options.setdefault("bit_depth", 8)
    segment_suffix = _check_output(target, info, options)
    key = _job_key(source, restorer, options | ({"deinterlace": True} if deinterlace else {}), config, segment_frames)
    work = _WorkFolder(target, key, resume=resume, suffix=segment_suffix)
    try:
        done = work.finished_frames()
        if done:
            log.warning("%s: resuming after frame %d (%d finished segments in %s)", source, done - 1, len(work.parts), work.folder)
        started = time.perf_counter()
        with VideoReader(source, deinterlace=deinterlace) as reader:
            # Frames before done - radius are decoded (seeking is not frame-exact) but not restored.
            frames = _threaded((f for f in reader if f.index >= done - radius), depth=2 * batch_size)
            try:
                restored = restore_frames(frames, restorer, temporal=config, batch_size=batch_size, report=report,
                                          start=done)
                bar = tqdm(restored, total=info.frame_count or None, initial=done, desc=source.name, unit="frame",
                           disable=not progress, dynamic_ncols=True)
                for first, segment in _segments(bar, done, segment_frames):
                    counted = _Counted(segment)
                    # Quiet: what the segments cannot keep was said once, by the up-front check.
                    write_video(work.segment_path(first), counted, info, **(options | {"audio_from": None, "quiet": True}))
                    work.finished(first, counted.count)
            except BaseException:
                if not work.parts:  # nothing to resume from (an undecodable first frame, a model error)
                    work.remove()
                raise
            finally:
                frames.close()  # stop and join the decode thread before the reader closes
            report.incomplete = reader.shortfall
        if not work.parts:
            work.remove()
            raise MediaError(source, "no frames to restore")
        try:
            join_videos(work.parts, target, rotation=info.rotation, audio_from=info.path, quiet=True)
        except MediaError as exc:
            if not info.has_audio:
                raise
            # The muxer refused a copied audio packet or header (the up-front check cannot write one):
            # the restored segments are kept, so transcoding the audio costs seconds, not the run.
            log.warning("%s: %s; joining again with the audio transcoded to AAC", source, exc)
            join_videos(work.parts, target, rotation=info.rotation, audio_from=info.path, transcode_audio=True, quiet=True)
        work.remove()
    finally:
        work.release()  # an error the caller keeps (a notebook's traceback) must not keep the folder held
    report.seconds = time.perf_counter() - started
    if report.spikes:
        log.warning("%s: temporal error spiked at %d frames: %s", source, len(report.spikes), report.spikes[:20])
    log.info("%s: %d frames in %.1f s (%.2f fps), flicker %.3f", source, report.frames, report.seconds, report.fps,
             report.flicker)
    return report


# Output suffix → the segments' container: one whose muxer keeps each file's timestamps, so the
# segments join packet by packet. MPEG-TS shifts every file's own, so its segments are MP4; AVI and
# MPEG-PS cannot take the joined packets at all (checked with PyAV's FFmpeg), so they are refused.
_SEGMENT_SUFFIXES = {".mp4": ".mp4", ".m4v": ".m4v", ".mov": ".mov", ".mkv": ".mkv", ".ts": ".mp4"}
VIDEO_OUTPUT_SUFFIXES = frozenset(_SEGMENT_SUFFIXES)  # what restore_video writes


def _check_output(target: Path, info: VideoInfo, options: dict[str, Any]) -> str:
    """The segments' suffix for ``target``, once its container, codec, bit depth and audio are known
    to work: a bad ``--codec`` or suffix fails here, before any frame is restored."""
    suffix = _SEGMENT_SUFFIXES.get(target.suffix.lower())
    if suffix is None:
        raise UnsupportedFormatError(
            target, f"vidrestore cannot write {target.suffix or 'suffix-less'} video; use {', '.join(_SEGMENT_SUFFIXES)}")
    check_writer(target, info, **options)
    if suffix != target.suffix.lower():
        check_writer(target.with_suffix(suffix), info, **(options | {"audio_from": None, "quiet": True}))
    return suffix


def _segments(frames: Iterable[Frame], first: int, length: int) -> Iterator[tuple[int, Iterator[Frame]]]:
    """Split a stream of frames (the first has index ``first``, a multiple of ``length``) into
    consecutive runs of ``length`` frames: ``(index of the run's first frame, run)``. Each run
    must be consumed before the next is requested."""
    iterator = iter(frames)
    while True:
        head = next(iterator, None)
        if head is None:
            return
        if head.index != first:
            raise MediaError(Path("<stream>"), f"expected frame {first}, got frame {head.index}")
        yield first, itertools.chain([head], itertools.islice(iterator, length - 1))
        first += length


def _job_key(source: Path, restorer: Any, options: dict[str, Any], config: TemporalConfig | None,
             segment_frames: int) -> dict[str, Any] | None:
    """What a finished segment depends on; None when the restorer cannot say (no resuming)."""
    fingerprint = getattr(restorer, "fingerprint", None)
    if not isinstance(fingerprint, str):
        return None
    stat = source.stat()
    return {
        # 2: segments keep the source's pixel shape, field order and (opt-in) chroma; 3: lengths.json
        "version": 3,
        "source": str(source.resolve()),
        "source_size": stat.st_size,
        "source_mtime_ns": stat.st_mtime_ns,
        "restorer": fingerprint,
        "options": options,
        "temporal": dataclasses.asdict(config) if config is not None else None,
        "segment_frames": segment_frames,
    }


_LENGTHS = "lengths.json"  # frames in each finished segment, by its first frame
_LOCK = ".lock"  # held by the restore writing the folder (hold_folder)


class _Counted:
    """An iterator that counts what passes through it."""

    def __init__(self, items: Iterable[Any]) -> None:
        self._items, self.count = iter(items), 0

    def __iter__(self) -> _Counted:
        return self

    def __next__(self) -> Any:
        item = next(self._items)
        self.count += 1
        return item


class _WorkFolder:
    """``.NAME.parts/`` beside the target: ``job.json`` (the job key) and finished segments
    ``FIRST-FRAME.ext`` (written atomically by :class:`~vidrestore.io.VideoWriter`)."""

    def __init__(self, target: Path, key: dict[str, Any] | None, *, resume: bool, suffix: str) -> None:
        self.folder = target.with_name(f".{target.name}.parts")
        self.suffix = suffix
        self.parts: list[Path] = []
        try:
            make_folder(self.folder)
            # Two restores into one target would write each other's segments (and one would remove
            # the folder under the other): the folder is held first, and only then looked at.
            self._lock = hold_folder(self.folder)
        except FolderInUse as error:
            raise MediaError(target, f"another restore into it is running ({self.folder} is {error.strerror}); wait for "
                                     "it to end, or pick another output") from None
        except OSError as error:
            raise MediaError(target, f"cannot prepare the work folder {self.folder}: {error.strerror or error}") from error
        try:
            if not resume or key is None or self._read_key() != key:
                if any(path.name != _LOCK for path in self.folder.iterdir()):
                    log.info("%s: previous partial results are for another job; starting over", self.folder)
                self._clear()
            if key is not None and not (self.folder / "job.json").exists():
                with atomic_output(self.folder / "job.json") as tmp:
                    tmp.write_text(json.dumps(key, indent=1))
        except OSError as error:
            self._lock.close()
            raise MediaError(target, f"cannot prepare the work folder {self.folder}: {error.strerror or error}") from error
        self._segment_frames = key["segment_frames"] if key is not None else None
        self._lengths = self._read_lengths()  # kept in step with lengths.json by finished()

    def _read_key(self) -> dict[str, Any] | None:
        try:
            return json.loads((self.folder / "job.json").read_text())
        except (OSError, ValueError):
            return None

    def finished_frames(self) -> int:
        """Frames covered by the finished whole segments that run on from frame 0 (others are
        dropped). A short segment — the clip's last, or where a source that was cut short while
        being read ended — is restored again: the source may have more frames now."""
        starts = sorted(int(p.stem) for p in self.folder.glob(f"*{self.suffix}") if p.stem.isdigit())
        expected = 0
        for start in starts:
            if start != expected or self._segment_frames is None or self._lengths.get(str(start)) != self._segment_frames:
                break
            self.finished(start, self._segment_frames)
            expected += self._segment_frames
        for path in self.folder.iterdir():
            if path.name not in ("job.json", _LENGTHS, _LOCK) and path not in self.parts:
                path.unlink()
        return len(self.parts) * (self._segment_frames or 0)

    def _clear(self) -> None:
        """Remove everything in the folder but the lock this process holds on it."""
        for path in self.folder.iterdir():
            if path.name != _LOCK:
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()

    def _read_lengths(self) -> dict[str, int]:
        try:
            lengths = json.loads((self.folder / _LENGTHS).read_text())
        except (OSError, ValueError):
            return {}
        return lengths if isinstance(lengths, dict) else {}

    def segment_path(self, first: int) -> Path:
        return self.folder / f"{first:09d}{self.suffix}"

    def finished(self, first: int, frames: int) -> None:
        """Record the segment starting at frame ``first``, of ``frames`` frames, as complete (joined
        at the end)."""
        path = self.segment_path(first)
        if path not in self.parts:
            self.parts.append(path)
        if self._lengths.get(str(first)) != frames:
            self._lengths[str(first)] = frames
            with atomic_output(self.folder / _LENGTHS) as tmp:
                tmp.write_text(json.dumps(self._lengths))

    def remove(self) -> None:
        """Remove the folder (the job is done, or left nothing to resume) and let go of it."""
        shutil.rmtree(self.folder, ignore_errors=True)
        self.release()

    def release(self) -> None:
        """Let another process use the folder (idempotent)."""
        self._lock.close()
