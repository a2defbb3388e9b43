"""Video restoration end to end: timing, audio, rotation, 10-bit, bad input, atomic output,
and the temporal stage's contract (output n depends only on inputs n-k..n+k)."""

from __future__ import annotations

import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from vidrestore.engine import Restorer
from vidrestore.errors import CorruptMediaError, MediaError
from vidrestore.io import Frame, VideoReader, VideoWriter, from_float, probe, to_float
from vidrestore.nets.unet import UNet
from vidrestore.temporal import TemporalConfig
from vidrestore.video import VideoReport, restore_frames, restore_video

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples/pan_degraded.mp4"


TINY = dict(base_channels=8, channel_multipliers=(1, 2), encoder_blocks=(1, 1), decoder_blocks=(1, 1), middle_blocks=1)


@pytest.fixture(scope="module")
def tiny_model() -> UNet:
    torch.manual_seed(0)
    model = UNet(**TINY)
    torch.nn.init.normal_(model.tail.weight, std=0.02)  # not the identity, so a wrong pipeline shows
    return model


@pytest.fixture(scope="module")
def restorer(tiny_model) -> Restorer:
    return Restorer(tiny_model, precision="fp32", tile=0)


@pytest.fixture(scope="module")
def tiny_model_path(tiny_model, tmp_path_factory) -> Path:
    from vidrestore.weights import save_generator

    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    save_generator(path, tiny_model, TINY)
    return path


def moving_frames(count: int, height: int = 64, width: int = 96, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.random((height, width + 2 * count, 3)).astype(np.float32)
    import cv2

    base = cv2.GaussianBlur(base, (0, 0), 2.0)
    return [np.ascontiguousarray(base[:, 2 * t : 2 * t + width]) for t in range(count)]


def write_clip(path: Path, frames: list[np.ndarray], *, codec="libx264", bit_depth=8, rotation=0, fps=Fraction(25), pts=None, audio_from=None, dtype=np.uint8):
    with VideoWriter(path, width=frames[0].shape[1], height=frames[0].shape[0], fps=fps, codec=codec, crf=12,
                     bit_depth=bit_depth, rotation=rotation, audio_from=audio_from) as writer:
        for index, frame in enumerate(frames):
            writer.write(from_float(frame, dtype), pts=None if pts is None else pts[index])


def read_all(path: Path) -> list:
    with VideoReader(path) as reader:
        return list(reader)


def test_sample_keeps_frames_fps_timestamps_and_audio(restorer, tmp_path):
    out = tmp_path / "out.mp4"
    report = restore_video(SAMPLE, out, restorer, progress=False)
    src, dst = probe(SAMPLE), probe(out)
    assert dst.frame_count == src.frame_count == report.frames == 48
    assert dst.fps == src.fps and dst.has_audio and (dst.width, dst.height) == (src.width, src.height)
    assert [f.time for f in read_all(out)] == pytest.approx([f.time for f in read_all(SAMPLE)], abs=1e-3)
    assert report.temporal_errors and report.flicker >= 0


def test_variable_frame_rate_timestamps_survive(restorer, tmp_path):
    source = tmp_path / "vfr.mkv"
    pts = [0, 1, 3, 4, 8, 9, 10, 15]
    write_clip(source, moving_frames(len(pts)), codec="ffv1", fps=Fraction(25), pts=pts)
    out = tmp_path / "vfr_out.mkv"
    restore_video(source, out, restorer, codec="ffv1", segment_frames=3, progress=False)  # joined segments
    assert [f.time for f in read_all(out)] == pytest.approx([f.time for f in read_all(source)], abs=1e-3)
    # x264's B-frames into MP4/MOV: a segment after a longer frame step (a dropped frame) had decode
    # times reaching back into the previous segment, and the join failed ("segments overlap").
    # A gap of 200 frames (a screen recording, a timelapse): the frame after it decodes far ahead of its time.
    for pts in ([0, 1, 2, 3, 5, 6], [0, 1, 3, 4, 6, 7, 8, 12, 13], [0, 1, 2, 3, 4, 205, 206, 207]):
        write_clip(source, moving_frames(len(pts)), fps=Fraction(30), pts=pts)
        for suffix in (".mp4", ".mov"):
            out = tmp_path / f"vfr_out{suffix}"
            restore_video(source, out, restorer, segment_frames=3, progress=False)
            assert [f.time for f in read_all(out)] == pytest.approx([f.time for f in read_all(source)], abs=1e-3)


def test_a_concatenated_file_with_audio_is_restored_whole(restorer, tmp_path, caplog):
    """Two MPEG-TS files joined end to end (what `cat` and many capture tools give): the video's
    timestamps jump back (already carried on by the reader) and so do the audio's; the join used
    to fail on them after the whole restoration."""
    part = tmp_path / "part.ts"
    write_clip(part, moving_frames(8), audio_from=SAMPLE)
    source = tmp_path / "joined.ts"
    source.write_bytes(part.read_bytes() * 2)
    for suffix in (".mp4", ".mkv"):
        out = tmp_path / f"out{suffix}"
        restore_video(source, out, restorer, progress=False)
        frames = read_all(out)
        assert len(frames) == 16 and all(b.time > a.time for a, b in zip(frames, frames[1:]))
        with av.open(str(out)) as container:
            times = [float(p.pts * p.time_base) for p in container.demux(container.streams.audio[0]) if p.size]
        assert all(b > a for a, b in zip(times, times[1:])) and times[-1] > frames[-1].time - 0.1
    assert "audio stream 1's timestamps jump back" in caplog.text


LEGACY = [("clip.wmv", "asf", "wmv2", 96, 64), ("clip.flv", "flv", "flv", 96, 64), ("clip.3gp", "3gp", "h263", 176, 144),
          ("clip.vob", "vob", "mpeg2video", 96, 64), ("clip.mts", "mpegts", "libx264", 96, 64),
          ("clip.dv", "dv", "dvvideo", 720, 576), ("clip.rm", "rm", "rv20", 96, 64), ("clip.ogv", "ogg", "libvpx", 96, 64)]


@pytest.mark.parametrize("name,container,codec,width,height", LEGACY, ids=[item[0] for item in LEGACY])
def test_old_footage_formats_are_found_and_restored(restorer, tmp_path, name, container, codec, width, height):
    """Old footage comes as Windows Media, Flash, phone 3GP, DVD VOB, AVCHD, DV, RealVideo and Ogg
    files: a folder of them was skipped without a word, a named one refused as an unsupported type.
    Raw DV read as 60000 fps (its time base), so the whole clip was called truncated and the rate
    went into the restored file."""
    from vidrestore.io.listing import list_media

    frames = moving_frames(10, height, width)
    with av.open(str(tmp_path / name), "w", format=container) as output:
        stream = output.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(from_float(frame, np.uint8), format="rgb24")
                                        .reformat(format="yuv420p")):
                output.mux(packet)
        for packet in stream.encode():
            output.mux(packet)
    assert list_media(tmp_path) == [(tmp_path / name).resolve()]
    assert probe(tmp_path / name).fps == 25
    # DV is interlaced, bottom field first, though its container does not say so (its frames do):
    # it was restored as progressive video, without the warning.
    assert (probe(tmp_path / name).field_order == 3) == (codec == "dvvideo")
    report = restore_video(tmp_path / name, tmp_path / "out.mkv", restorer, progress=False)
    assert report.frames == 10 and not report.incomplete
    restored = probe(tmp_path / "out.mkv")
    assert (restored.width, restored.height, restored.fps) == (width, height, 25)
    times = [f.time for f in read_all(tmp_path / "out.mkv")]  # MPEG streams start where their clock did
    assert [round(t - times[0], 3) for t in times] == [i / 25 for i in range(10)]


def test_rotation_and_ten_bit_are_kept(restorer, tmp_path):
    source = tmp_path / "rot10.mkv"
    frames = moving_frames(6)
    write_clip(source, frames, codec="libx265", bit_depth=10, rotation=90, dtype=np.uint16)
    assert probe(source).bit_depth == 10
    out = tmp_path / "rot10_out.mkv"
    restore_video(source, out, restorer, codec="libx265", crf=10, segment_frames=4, progress=False)
    info = probe(out)
    assert info.rotation == 90 and info.bit_depth == 10
    decoded = read_all(out)
    assert decoded[0].rgb.dtype == np.uint16
    # Not truncated to 8 bits: many values are not multiples of 257 (8-bit values scaled up).
    levels = np.unique(decoded[2].rgb)
    assert (levels % 257 != 0).mean() > 0.5 and len(levels) > 256


def test_corrupt_and_missing_inputs_fail_clearly_and_leave_no_output(restorer, tiny_model_path, tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 100)
    out = tmp_path / "out.mp4"
    with pytest.raises(MediaError) as info:
        restore_video(bad, out, restorer, progress=False)
    assert "bad.mp4" in str(info.value)
    assert not out.exists() and not list(tmp_path.glob("*partial*"))
    cli = subprocess.run([sys.executable, "-m", "vidrestore.cli", "restore", str(bad), "-o", str(out),
                          "--model", str(tiny_model_path)], capture_output=True, text=True)
    assert cli.returncode == 1 and "bad.mp4" in cli.stderr and "Traceback" not in cli.stderr


class Boom(RuntimeError):
    pass


class CrashingRestorer:
    """The restorer, crashing on its ``crash_on``-th call; same fingerprint (same frames)."""

    def __init__(self, restorer: Restorer, crash_on: int) -> None:
        self.restorer, self.crash_on, self.calls = restorer, crash_on, 0
        self.fingerprint = restorer.fingerprint

    def __call__(self, frames):
        self.calls += 1
        if self.calls == self.crash_on:
            raise Boom("simulated crash half-way")
        return self.restorer(frames)


def test_interrupted_run_leaves_no_half_file_and_resumes_where_it_stopped(restorer, tmp_path):
    out, reference = tmp_path / "out.mkv", tmp_path / "reference.mkv"
    restore_video(SAMPLE, reference, restorer, codec="ffv1", progress=False)
    with pytest.raises(Boom):  # 4 frames per call: frames 0-23 restored, 0-19 written (segments of 10)
        restore_video(SAMPLE, out, CrashingRestorer(restorer, crash_on=7), codec="ffv1", segment_frames=10,
                      progress=False)
    work = tmp_path / ".out.mkv.parts"
    assert not out.exists() and sorted(p.name for p in work.iterdir()) == [".lock", "000000000.mkv", "000000010.mkv",
                                                                          "job.json", "lengths.json"]
    resumed = CrashingRestorer(restorer, crash_on=0)
    report = restore_video(SAMPLE, out, resumed, codec="ffv1", segment_frames=10, progress=False)
    # Restores frames 18-47 (from 20 - radius 2) in 8 calls instead of 12; reports the 28 new ones.
    assert report.frames == 28 and resumed.calls == 8
    assert not work.exists() and probe(out).has_audio
    got, want = read_all(out), read_all(reference)
    assert [f.pts for f in got] == [f.pts for f in want]
    assert all(np.array_equal(a.rgb, b.rgb) for a, b in zip(got, want))  # bitwise an uninterrupted run


def test_a_second_restore_into_the_same_target_is_refused_while_the_first_runs(restorer, tmp_path):
    """Two restores into one target wrote each other's segments, and the first to finish removed
    the work folder under the other."""
    out, refusals = tmp_path / "out.mkv", []

    class Intruding:  # starts a second restore of the same job while the first is under way
        fingerprint = restorer.fingerprint

        def __call__(self, frames):
            if not refusals:
                with pytest.raises(MediaError, match="another restore into it is running") as refused:
                    restore_video(SAMPLE, out, restorer, codec="ffv1", segment_frames=10, progress=False)
                refusals.append(refused)
            return restorer(frames)

    report = restore_video(SAMPLE, out, Intruding(), codec="ffv1", segment_frames=10, progress=False)
    assert refusals and report.frames == 48 and len(read_all(out)) == 48
    assert not (tmp_path / ".out.mkv.parts").exists()
    assert restore_video(SAMPLE, out, restorer, codec="ffv1", progress=False).frames == 48  # let go of at the end


def test_a_batch_size_below_one_is_refused_not_one_batch_of_the_whole_video(restorer, tmp_path):
    """batch_size=0 never closed a batch: the whole video was decoded into one call (out of
    memory on any real clip, after minutes)."""
    for bad in (0, -3, 1.5):
        with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
            restore_video(SAMPLE, tmp_path / "out.mkv", restorer, batch_size=bad, progress=False)
        with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
            next(restore_frames(iter(_frames(3)), restorer, batch_size=bad))
    assert not list(tmp_path.iterdir())
    assert len(list(restore_frames(iter(_frames(3)), restorer, batch_size=np.int64(2)))) == 3


def test_a_work_folder_its_holder_removes_is_claimed_afresh(tmp_path, monkeypatch):
    """A restore that finishes removes its work folder, lock file included, while still holding the
    lock: a second restore that had opened the old lock file just then locked the removed file, and
    a third could lock the new one — two holders. The claim now checks it holds the file that is there."""
    import fcntl
    import shutil

    from vidrestore.io._files import FolderInUse, hold_folder

    folder = tmp_path / ".out.mkv.parts"
    first = hold_folder(folder)
    real_flock = fcntl.flock

    def first_finishes_meanwhile(handle, flags):  # between the second's open and its flock
        if not first.closed:
            shutil.rmtree(folder)
            first.close()
        return real_flock(handle, flags)

    monkeypatch.setattr(fcntl, "flock", first_finishes_meanwhile)
    second = hold_folder(folder)
    monkeypatch.undo()
    assert (folder / ".lock").read_text() == f"pid {os.getpid()}"
    with pytest.raises(FolderInUse):  # the second holds the folder's lock, not a removed file's
        hold_folder(folder)
    second.close()
    hold_folder(folder).close()


def test_a_whole_crf_resumes_as_the_same_job_whatever_its_type(restorer, tmp_path):
    """The command line reads --crf as a number (20.5 is valid): 18.0 resumes a job started with 18
    (the job key is compared as loaded JSON, where 18 == 18.0)."""
    out = tmp_path / "out.mp4"
    with pytest.raises(Boom):
        restore_video(SAMPLE, out, CrashingRestorer(restorer, crash_on=7), crf=18, segment_frames=10, progress=False)
    assert restore_video(SAMPLE, out, restorer, crf=18.0, segment_frames=10, progress=False).frames == 28


def test_sigterm_stops_a_restore_like_ctrl_c_and_the_next_run_continues(tiny_model_path, tmp_path):
    """A scheduler's or `timeout`'s SIGTERM killed `restore` mid-write: no message, exit -15, the
    segment being written left as a temporary file. It now stops as Ctrl-C does."""
    import signal
    import time

    out = tmp_path / "out.mkv"
    command = [sys.executable, "-m", "vidrestore.cli", "restore", str(SAMPLE), "-o", str(out), "--model",
               str(tiny_model_path), "--codec", "ffv1", "--segment-frames", "4"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    work = tmp_path / ".out.mkv.parts"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(work.glob("0*.mkv"))) < 2 and process.poll() is None:
        time.sleep(0.01)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143 and stderr.strip().endswith("terminated"), stderr
    assert not out.exists() and not [p.name for p in work.iterdir() if "partial" in p.name]
    kept = len(list(work.glob("0*.mkv")))
    assert 2 <= kept < 12
    finished = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    assert not work.exists() and len(read_all(out)) == 48


def test_a_short_segment_from_a_source_cut_while_read_is_restored_again(restorer, tmp_path, monkeypatch):
    """A source cut short while being read (then put back as it was) left a 3-frame segment kept
    as a finished 10-frame one: the resume skipped 7 frames and said nothing."""
    import vidrestore.video as video

    out, reference = tmp_path / "out.mkv", tmp_path / "reference.mkv"
    restore_video(SAMPLE, reference, restorer, codec="ffv1", progress=False)
    real_iter = VideoReader.__iter__

    def cut_short(self):
        return (frame for frame in real_iter(self) if frame.index < 23)

    def failing_join(*args, **kwargs):
        raise MediaError(SAMPLE, "the source went away")

    with monkeypatch.context() as patch:
        patch.setattr(VideoReader, "__iter__", cut_short)
        patch.setattr(video, "join_videos", failing_join)
        with pytest.raises(MediaError, match="went away"):
            restore_video(SAMPLE, out, restorer, codec="ffv1", segment_frames=10, progress=False)
    report = restore_video(SAMPLE, out, restorer, codec="ffv1", segment_frames=10, progress=False)
    assert report.frames == 28  # frames 20-47: the short segment 20-22 is done again
    got, want = read_all(out), read_all(reference)
    assert len(got) == 48 and all(np.array_equal(a.rgb, b.rgb) for a, b in zip(got, want))


def test_another_job_or_model_does_not_reuse_partial_results(restorer, tiny_model, tmp_path):
    out = tmp_path / "out.mkv"
    with pytest.raises(Boom):
        restore_video(SAMPLE, out, CrashingRestorer(restorer, crash_on=5), codec="ffv1", segment_frames=8,
                      progress=False)
    other_model = UNet(**TINY)
    other = Restorer(other_model, precision="fp32", tile=0)
    assert other.fingerprint != restorer.fingerprint
    assert Restorer(tiny_model, precision="fp32", tile=0).fingerprint == restorer.fingerprint
    assert Restorer(tiny_model, precision="fp32", tile=64).fingerprint != restorer.fingerprint
    report = restore_video(SAMPLE, out, other, codec="ffv1", segment_frames=8, progress=False)
    assert report.frames == 48  # started over
    with pytest.raises(Boom):
        restore_video(SAMPLE, out, CrashingRestorer(restorer, crash_on=5), codec="ffv1", segment_frames=8,
                      progress=False)
    report = restore_video(SAMPLE, out, restorer, codec="ffv1", segment_frames=8, crf=20, progress=False)
    assert report.frames == 48  # another setting: started over
    with pytest.raises(Boom):
        restore_video(SAMPLE, out, CrashingRestorer(restorer, crash_on=5), codec="ffv1", segment_frames=8,
                      progress=False)
    report = restore_video(SAMPLE, out, restorer, codec="ffv1", segment_frames=8, resume=False, progress=False)
    assert report.frames == 48 and not (tmp_path / ".out.mkv.parts").exists()


def test_segments_join_into_the_same_frames_timing_and_audio(restorer, tmp_path):
    whole, joined = tmp_path / "whole.mp4", tmp_path / "joined.mp4"
    restore_video(SAMPLE, whole, restorer, codec="ffv1", segment_frames=1000, progress=False)
    restore_video(SAMPLE, joined, restorer, codec="ffv1", segment_frames=7, progress=False)  # 6 full + 1 short
    a, b = read_all(whole), read_all(joined)
    assert len(a) == len(b) == 48 and [f.pts for f in a] == [f.pts for f in b]
    assert all(np.array_equal(x.rgb, y.rgb) for x, y in zip(a, b))
    assert probe(joined).has_audio and probe(joined).duration == pytest.approx(probe(whole).duration, abs=0.05)
    # x264 with B-frames (timestamps reordered inside each segment) joins as well.
    # Each joined frame is as close to the lossless frame as an unsegmented encode's (a frame out
    # of place in the panning clip would be far off).
    lossy_whole, lossy_joined = tmp_path / "lossy_whole.mp4", tmp_path / "lossy_joined.mp4"
    restore_video(SAMPLE, lossy_whole, restorer, segment_frames=1000, progress=False)
    restore_video(SAMPLE, lossy_joined, restorer, segment_frames=10, progress=False)
    whole_frames, joined_frames = read_all(lossy_whole), read_all(lossy_joined)
    assert [f.pts for f in joined_frames] == [f.pts for f in a]

    def error(frames):
        return np.array([np.abs(x.rgb.astype(int) - y.rgb.astype(int)).mean() for x, y in zip(frames, a)])

    assert (error(joined_frames) < 1.15 * error(whole_frames) + 0.5).all()


def test_output_container_and_codec_are_checked_before_any_frame_is_restored(restorer, tmp_path):
    """A bad codec or a container the segments cannot be joined into fails at once, with nothing
    restored and no work folder; MPEG-TS, whose muxer shifts each file's timestamps, gets MP4
    segments and joins with the frames' timing (a constant muxer delay aside)."""
    calls = []

    def counting(frames):
        calls.append(len(frames))
        return restorer(frames)

    for name, options, message in [("out.avi", {}, r"cannot write \.avi video; use \.mp4"),
                                   ("out.mp4", {"codec": "bogus"}, "unknown video codec 'bogus'"),
                                   ("out.webm", {}, r"cannot write \.webm video"),
                                   ("out.mov", {"codec": "ffv1"}, "cannot hold ffv1")]:
        with pytest.raises(MediaError, match=message):
            restore_video(SAMPLE, tmp_path / name, counting, progress=False, **options)
    for crf in (-5, 60, float("nan")):  # x264 said "Numerical result out of range" once encoding began
        with pytest.raises(ValueError, match=f"crf must be a number in \\[0, 51\\], got {crf}"):
            restore_video(SAMPLE, tmp_path / "out.mp4", counting, progress=False, crf=crf)
    assert calls == [] and list(tmp_path.iterdir()) == []

    def failing(frames):
        raise RuntimeError("the model failed")

    # A failure before the first segment is finished leaves no work folder (nothing to resume).
    with pytest.raises(RuntimeError, match="the model failed"):
        restore_video(SAMPLE, tmp_path / "out.mp4", failing, progress=False)
    assert list(tmp_path.iterdir()) == []
    restore_video(SAMPLE, tmp_path / "out.ts", counting, segment_frames=20, progress=False)  # 20 + 20 + 8
    source, joined = read_all(SAMPLE), read_all(tmp_path / "out.ts")
    assert len(joined) == len(source) == 48 and probe(tmp_path / "out.ts").has_audio
    offset = joined[0].time - source[0].time
    assert [round(f.time - offset, 4) for f in joined] == [round(f.time, 4) for f in source]


def _frames(count: int) -> list[Frame]:
    return [Frame(index=i, pts=i, time=i / 25, rgb=from_float(f, np.uint8)) for i, f in enumerate(moving_frames(count))]


def test_output_depends_only_on_its_window(restorer):
    """Frame n of a long run equals frame n restored from just inputs n-2..n+2 (random access).

    batch_size=1 in both runs: the engine's float results can differ in the last bit with the
    batch a frame shares (oneDNN picks kernels by shape), so callers that need bit-exact random
    access batch by fixed frame groups (as the VapourSynth filter does)."""
    config = TemporalConfig(radius=2)
    frames = _frames(10)
    full = list(restore_frames(frames, restorer, temporal=config, batch_size=1))
    for n in (2, 5, 7):
        window = frames[n - 2 : n + 3]
        alone = list(restore_frames(window, restorer, temporal=config, batch_size=1))[2]
        assert np.array_equal(alone.rgb, full[n].rgb), n


def test_temporal_stage_reduces_flicker_of_a_noisy_restorer():
    """A 'restorer' that adds fresh noise per frame flickers; fusion must cut the flicker."""
    rng = np.random.default_rng(1)

    def noisy(frames):
        return np.clip(frames + rng.normal(0, 0.03, frames.shape).astype(np.float32), 0, 1)

    frames = _frames(12)
    plain, fused = VideoReport(), VideoReport()
    list(restore_frames(frames, noisy, temporal=None, report=plain))
    list(restore_frames(frames, noisy, temporal=TemporalConfig(radius=2, tolerance=0.2), report=fused))
    assert fused.flicker < 0.7 * plain.flicker, (fused.flicker, plain.flicker)


def test_scene_cut_stops_fusion():
    frames = _frames(8)
    # Another shot: other content, much brighter.
    other = [Frame(index=8 + i, pts=8 + i, time=(8 + i) / 25, rgb=from_float(0.5 + 0.5 * f, np.uint8))
             for i, f in enumerate(moving_frames(8, seed=5))]
    report = VideoReport()
    out = list(restore_frames(frames + other, lambda x: x, temporal=TemporalConfig(radius=2), report=report))
    assert report.scene_cuts == [8]
    # Across the cut nothing bleeds: the first frame after it is (almost) its own input.
    assert np.abs(out[8].rgb.astype(int) - other[0].rgb.astype(int)).mean() < 1.0


def test_flow_does_not_depend_on_what_the_thread_computed_before():
    """The motion estimate of a pair is the same whatever flows (other sizes) came before it in the
    thread: a reused OpenCV DIS object returned a flow 0.4 px different after other frame sizes,
    so a frame's output depended on which frames its VapourSynth thread had restored before."""
    import cv2

    from vidrestore.temporal import flow

    def pair(height: int, width: int, seed: int, shift: int) -> tuple[np.ndarray, np.ndarray]:
        noise = np.random.default_rng(seed).random((height, width)) * 255
        first = cv2.GaussianBlur(noise.astype(np.uint8), (0, 0), 1.5)
        return first, np.roll(first, shift, axis=1)

    reference, other = pair(64, 96, 0, 2)
    before = flow(reference, other)
    for height, width in [(48, 64), (64, 64), (180, 320), (36, 64)]:
        flow(*pair(height, width, 1, 3))
    assert np.array_equal(flow(reference, other), before)
    assert abs(float(np.median(before[..., 0])) - 2.0) < 0.25  # and it is the motion: 2 px to the right


@pytest.mark.parametrize("height, width", [(1, 1), (2, 2), (5, 11), (3, 200), (24, 200), (16, 96), (4000, 6)])
def test_flow_and_the_temporal_stage_take_frames_of_any_size(height, width):
    """DIS refuses frames under 12 px on a side and crashes the process on thin ones (24×200; a
    tall, thin frame shrunk for speed makes one): such frames are padded, so a 2×2 or a strip
    of a clip restores instead of crashing the batch."""
    from vidrestore.temporal import flow

    rng = np.random.default_rng(height * width)
    luma = rng.integers(0, 256, (height, width), dtype=np.uint8)
    field = flow(luma, luma)
    assert field.shape == (height, width, 2) and field.dtype == np.float32 and np.isfinite(field).all()
    assert float(np.abs(field).max()) < 0.5, "a frame against itself does not move"
    if height * width <= 4000:
        still = rng.random((height, width, 3)).astype(np.float32)
        frames = [Frame(index=i, pts=i, time=i / 25, rgb=from_float(still, np.uint8)) for i in range(4)]
        report = VideoReport()
        out = list(restore_frames(frames, lambda x: x, temporal=TemporalConfig(radius=2), report=report))
        assert [f.rgb.shape for f in out] == [(height, width, 3)] * 4
        assert all(np.abs(o.rgb.astype(int) - f.rgb.astype(int)).max() <= 1 for o, f in zip(out, frames))


# ------------------------------------------------------------------------------ fades, flashes, faint motion


def _texture(height: int, width: int, seed: int, contrast: float = 1.0, level: float = 0.5) -> np.ndarray:
    import cv2

    rng = np.random.default_rng(seed)
    picture = sum(cv2.GaussianBlur(rng.standard_normal((height, width, 3)).astype(np.float32), (0, 0), s)
                  for s in (2, 5, 12))
    picture = (picture - picture.mean()) / picture.std()
    return np.clip(level + 0.18 * contrast * picture, 0, 1).astype(np.float32)


def _noisy(frames: list[np.ndarray], sigma: float, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [np.clip(f + rng.normal(0, sigma, f.shape).astype(np.float32), 0, 1) for f in frames]


def test_a_fade_still_fuses_and_keeps_each_frames_brightness():
    """Neighbours of a fading frame differ in brightness as a whole: matched first, they still
    take the noise out, and lend none of their own brightness (frames came out 14 % too dark)."""
    from vidrestore.temporal import fuse_window

    texture = _texture(90, 160, 1)
    clean = [texture * np.float32(alpha) for alpha in (0.7, 0.6, 0.5, 0.4, 0.3)]
    frames = _noisy(clean, 4 / 255)
    fused = fuse_window(frames, 2, config=TemporalConfig())
    assert abs(float(fused.mean() - clean[2].mean())) * 255 < 0.3
    error = lambda image: float(np.sqrt(np.mean((image - clean[2]) ** 2)))  # noqa: E731
    assert error(fused) < 0.75 * error(frames[2])


def test_a_weak_flash_is_kept_and_does_not_leak():
    from vidrestore.temporal import fuse_window

    texture = _texture(90, 160, 2)
    clean = [texture, texture, np.clip(texture * 1.08, 0, 1), texture, texture]
    frames = _noisy(clean, 4 / 255, seed=1)
    flash = fuse_window(frames, 2, config=TemporalConfig())
    assert abs(float(flash.mean() - clean[2].mean())) * 255 < 0.3  # half of the flash was averaged away
    after = fuse_window(frames[1:], 2, config=TemporalConfig())  # frame 3: the flash is a neighbour
    assert abs(float(after.mean() - clean[3].mean())) * 255 < 0.2


def test_a_faint_fast_object_the_flow_misses_is_not_averaged_away():
    """A 48 px object 8 levels above a foggy background, 20 px a frame: DIS does not follow it,
    and the mis-warped neighbours disagree by less than the fixed tolerance (it lost 4.9 dB)."""
    from vidrestore.temporal import fuse_window

    background = _texture(180, 320, 10, contrast=0.3, level=0.25)
    detail = (_texture(48, 48, 13, contrast=0.15) - 0.5).astype(np.float32)
    clean, masks = [], []
    for t in range(5):
        frame, mask = background.copy(), np.zeros((180, 320), bool)
        x = 90 + 20 * t
        frame[66:114, x:x + 48] = 0.25 + 8 / 255 + detail
        mask[66:114, x:x + 48] = True
        clean.append(np.clip(frame, 0, 1))
        masks.append(mask)
    frames = _noisy(clean, 1 / 255, seed=3)  # restored frames: about a level of noise left
    fused = fuse_window(frames, 2, config=TemporalConfig())
    inside = lambda image: 10 * np.log10(1 / np.mean((image[masks[2]] - clean[2][masks[2]]) ** 2))  # noqa: E731
    assert inside(fused) > 42.0  # was 35.1 (the input frame: 48.2)


def test_cuts_are_found_at_batch_boundaries_without_the_temporal_stage():
    """The report's cut check compared with window[-1], which a radius-0 window no longer holds
    at a batch's first frame: cuts there were missed and logged as flicker spikes."""
    first, second = _texture(36, 64, 4), 1 - _texture(36, 64, 5)
    frames = [Frame(i, i, i / 25, from_float(first if i < 8 else second, np.uint8)) for i in range(12)]
    for batch_size in (4, 5):
        report = VideoReport()
        list(restore_frames(iter(frames), lambda x: x, temporal=None, batch_size=batch_size, report=report))
        assert report.scene_cuts == [8] and report.spikes == [], batch_size


def test_a_cut_between_two_dark_low_contrast_shots_is_found():
    """Two night shots differ by 0.047 on average (thumbnails), far under the 0.15 threshold: the
    cut went unseen and the other shot bled into the two frames either side of it (−0.9 dB)."""
    first, second = (_texture(180, 320, seed, contrast=0.25, level=0.12) for seed in (9, 10))
    frames = [Frame(i, i, i / 25, from_float(first if i < 6 else second, np.uint8)) for i in range(10)]
    report = VideoReport()
    out = list(restore_frames(_noisy_frames(frames, 3 / 255), lambda x: x, temporal=TemporalConfig(), report=report))
    assert report.scene_cuts == [6]
    for index, own, other in ((5, first, second), (6, second, first)):
        shift = out[index].rgb.astype(np.float32) / 255 - own
        toward = other - own
        assert float((shift * toward).sum() / (toward * toward).sum()) < 0.02, index  # no share of the other shot


def _noisy_frames(frames: list[Frame], sigma: float) -> list[Frame]:
    noisy = _noisy([to_float(f.rgb) for f in frames], sigma)
    return [Frame(f.index, f.pts, f.time, from_float(n, np.uint8)) for f, n in zip(frames, noisy)]


@pytest.mark.parametrize("speed", [4, 24, 40])
def test_fast_pans_fades_and_flat_frames_are_not_cuts(speed):
    """The correlation test allows for motion: a pan up to a tenth of the frame per step matches
    itself; a fade's frames correlate whatever their brightness; black frames are not compared."""
    from vidrestore.temporal import is_scene_cut

    scene = _texture(360, 640 + 12 * speed, 11, contrast=0.6)
    pan = [scene[:, t * speed:t * speed + 640] for t in range(12)]
    assert not any(is_scene_cut(a, b) for a, b in zip(pan, pan[1:]))
    fade = [pan[0] * np.float32(alpha) for alpha in (1.0, 0.85, 0.7, 0.55, 0.4, 0.25, 0.1, 0.0, 0.0)]
    fade = _noisy(fade, 2 / 255)
    assert not any(is_scene_cut(a, b) for a, b in zip(fade, fade[1:]))


def test_noise_on_small_flat_frames_is_no_cut():
    """Noise alone lifted a small frame's thumbnail over the contrast floor, and noise does not
    correlate: every pair of a noisy 320×180 grey clip was a cut (fusion off)."""
    from vidrestore.temporal import is_scene_cut

    rng = np.random.default_rng(0)
    for height, width in ((180, 320), (144, 176)):
        frames = [np.clip(0.5 + rng.normal(0, 0.08, (height, width, 3)), 0, 1) for _ in range(6)]  # float64 too
        assert not any(is_scene_cut(a, b) for a, b in zip(frames, frames[1:])), (height, width)
    with pytest.raises(ValueError, match="cut_correlation"):
        TemporalConfig(cut_correlation=1.5)
