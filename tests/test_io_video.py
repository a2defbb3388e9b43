"""Tests for vidrestore.io.video: real files encoded with PyAV, read back and compared."""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

import av
from av.video.reformatter import Colorspace
import numpy as np
import pytest

from vidrestore.errors import CorruptMediaError, MediaError, UnsupportedFormatError
from vidrestore.io import VideoReader, VideoWriter, probe, write_video
from vidrestore.io.video import join_videos

FPS = Fraction(30000, 1001)
HEIGHT, WIDTH = 48, 64


def gradient(height: int = HEIGHT, width: int = WIDTH, shift: int = 0) -> np.ndarray:
    """Smooth RGB ramps, (height, width, 3) uint8; ``shift`` moves them so frames differ."""
    y, x = np.mgrid[0:height, 0:width]
    red = (x + shift) % width * 255 // (width - 1)
    green = y * 255 // (height - 1)
    blue = (x + y) * 255 // (width + height - 2)
    return np.stack([red, green, blue], axis=-1).astype(np.uint8)


def make_source(path: Path, *, frame_count: int = 24, audio_codec: str = "aac", rotation: int = 90) -> Path:
    """Encode a clip with PyAV alone: x264 gradient frames, a 1 s 440 Hz sine, a display rotation."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        video.set_display_rotation(rotation)
        audio = container.add_stream(audio_codec, rate=48000, layout="mono")
        for index in range(frame_count):
            frame = av.VideoFrame.from_ndarray(gradient(shift=index), format="rgb24").reformat(format="yuv420p")
            frame.pts = index
            container.mux(video.encode(frame))
        container.mux(video.encode())
        sample_format = "flt" if audio_codec == "aac" else "u8"
        sine = 0.3 * np.sin(2 * np.pi * 440 * np.arange(48000) / 48000)
        samples = sine.astype(np.float32) if sample_format == "flt" else (128 + 100 * sine).astype(np.uint8)
        audio_frame = av.AudioFrame.from_ndarray(samples[None, :], format=sample_format, layout="mono")
        audio_frame.sample_rate, audio_frame.pts = 48000, 0
        container.mux(audio.encode(audio_frame))
        container.mux(audio.encode())
    return path


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_source(tmp_path_factory.mktemp("video") / "source.mp4")


def read_all(path: Path, **options: object) -> list:
    with VideoReader(path, **options) as reader:
        return list(reader)


def first_audio_payloads(path: Path, count: int) -> list[bytes]:
    with av.open(str(path)) as container:
        payloads = [bytes(packet) for packet in container.demux(container.streams.audio[0]) if packet.size]
    return payloads[:count]


def test_probe_describes_source(source: Path) -> None:
    info = probe(source)
    assert (info.width, info.height, info.frame_count, info.fps) == (WIDTH, HEIGHT, 24, FPS)
    assert (info.codec, info.pix_fmt, info.bit_depth, info.rotation, info.has_audio) == ("h264", "yuv420p", 8, 90, True)
    assert info.duration == pytest.approx(24 / FPS, abs=0.05)


def test_round_trip_keeps_frames_rate_rotation_audio(source: Path, tmp_path: Path) -> None:
    info = probe(source)
    output = tmp_path / "restored.mp4"
    with VideoReader(source) as reader:
        assert write_video(output, reader, info, crf=10) == 24
    written = probe(output)
    assert (written.frame_count, written.fps, written.rotation, written.has_audio) == (24, FPS, 90, True)
    assert len(read_all(output)) == 24
    # Audio is copied packet for packet (no re-encode), cut where the video ends.
    assert first_audio_payloads(output, 5) == first_audio_payloads(source, 5)
    assert written.duration == pytest.approx(info.duration, abs=0.05)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["restored.mp4"]


def test_audio_the_container_cannot_hold_is_transcoded_to_aac(tmp_path: Path) -> None:
    source = make_source(tmp_path / "source.mkv", audio_codec="pcm_u8")
    output = tmp_path / "out.mp4"
    with VideoWriter(output, width=WIDTH, height=HEIGHT, fps=FPS, audio_from=source) as writer:
        for _ in range(24):
            writer.write(gradient())
    with av.open(str(output)) as container:
        assert container.streams.audio[0].codec_context.name == "aac"


@pytest.mark.parametrize("codec", ["libx264", "libx265"])
def test_lossy_colour_error_is_small(codec: str, tmp_path: Path) -> None:
    output = tmp_path / "gradient.mp4"
    image = gradient()
    with VideoWriter(output, width=WIDTH, height=HEIGHT, fps=FPS, codec=codec, crf=10) as writer:
        for _ in range(4):
            writer.write(image)
    frames = read_all(output)
    assert frames[0].rgb.dtype == np.uint8 and frames[0].rgb.shape == image.shape
    assert np.abs(frames[-1].rgb.astype(float) - image).mean() < 3
    info = probe(output)
    assert (info.colorspace, info.color_range) == (6, 1)  # SD size: BT.601 limited range by default


@pytest.mark.parametrize("codec", ["libx264", "h265"])
def test_ten_bit_keeps_more_than_eight_bits(codec: str, tmp_path: Path) -> None:
    width = 640
    ramp = np.linspace(0, 65535, width).astype(np.uint16)
    image = np.repeat(np.repeat(ramp[None, :, None], 16, axis=0), 3, axis=2)
    output = tmp_path / "ramp.mkv"
    with VideoWriter(output, width=width, height=16, fps=FPS, codec=codec, crf=4, bit_depth=10) as writer:
        for _ in range(3):
            writer.write(image)
    assert probe(output).bit_depth == 10
    rgb = read_all(output)[0].rgb  # dtype defaults to uint16 for a 10-bit stream
    assert rgb.dtype == np.uint16
    assert len(np.unique(rgb[..., 1])) > 256
    assert np.abs(rgb.astype(float) - image).mean() < 3 * 257


@pytest.mark.parametrize("pixel_format", ["yuv420p10le", "yuv422p10le", "yuv420p", "yuv444p10le"])
def test_colour_survives_a_high_bit_depth_decode(pixel_format: str, tmp_path: Path) -> None:
    """Colour, not just a gray ramp: this swscale's 4:2:0 → 16-bit RGB with full chroma
    interpolation came out at 10 dB (every 10-bit video's colours ruined)."""
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float64)
    picture = np.stack([x / WIDTH, y / HEIGHT, 0.5 + 0.4 * np.sin(x / 9 + y / 7)], axis=-1)
    source = np.round(picture * 65535).astype(np.uint16)
    output = tmp_path / "colour.mkv"
    with av.open(str(output), "w") as container:  # lossless, in the source format under test
        stream = container.add_stream("ffv1", rate=24)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, pixel_format
        frame = av.VideoFrame.from_ndarray(source, format="rgb48le").reformat(
            format=pixel_format, dst_colorspace=Colorspace.ITU601, dst_color_range=1)  # untagged SD: BT.601 limited
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    rgb = read_all(output)[0].rgb.astype(np.float64)
    rgb /= np.iinfo(read_all(output)[0].rgb.dtype).max
    error = np.sqrt(np.mean((rgb - picture) ** 2))
    assert error < 0.02, f"{pixel_format}: RMS error {error:.3f} of full scale"


@pytest.mark.parametrize(("bit_depth", "dtype"), [(8, np.uint8), (16, np.uint16)])
def test_ffv1_is_lossless_for_rgb(bit_depth: int, dtype: type, tmp_path: Path) -> None:
    noise = (
        np.random.default_rng(0).integers(0, np.iinfo(dtype).max, (3, HEIGHT, WIDTH, 3), endpoint=True).astype(dtype)
    )
    output = tmp_path / "lossless.mkv"
    with VideoWriter(output, width=WIDTH, height=HEIGHT, fps=FPS, codec="ffv1", bit_depth=bit_depth) as writer:
        for frame in noise:
            writer.write(frame)
    frames = read_all(output)
    assert len(frames) == 3
    assert all(np.array_equal(frame.rgb, expected) for frame, expected in zip(frames, noise, strict=True))


def test_odd_size_uses_full_chroma_and_says_so(tmp_path: Path, caplog) -> None:
    image = gradient(height=33, width=47)
    output = tmp_path / "odd.mp4"
    with VideoWriter(output, width=47, height=33, fps=FPS, crf=10) as writer:
        writer.write(image)
    assert probe(output).pix_fmt == "yuv444p"
    assert np.abs(read_all(output)[0].rgb.astype(float) - image).mean() < 3
    # Silent before: the README says video is written 4:2:0, which plays everywhere; 4:4:4 does not.
    assert caplog.text.count("47x33 has an odd side, which 4:2:0 chroma cannot have: written 4:4:4") == 1
    caplog.clear()
    with VideoWriter(tmp_path / "even.mp4", width=48, height=32, fps=FPS, chroma="444") as writer:
        writer.write(gradient(height=32, width=48))
    assert "odd side" not in caplog.text


def test_variable_frame_rate_timestamps_survive(tmp_path: Path) -> None:
    timestamps = [0, 1, 3, 7, 8, 12]
    output = tmp_path / "vfr.mp4"
    with VideoWriter(output, width=WIDTH, height=HEIGHT, fps=Fraction(30), time_base=Fraction(1, 30)) as writer:
        for pts in timestamps:
            writer.write(gradient(shift=pts), pts=pts)
    frames = read_all(output)
    assert [frame.time for frame in frames] == pytest.approx([pts / 30 for pts in timestamps], abs=1e-3)
    assert [frame.index for frame in frames] == list(range(len(timestamps)))


def test_default_encoding_is_the_same_every_time(tmp_path: Path) -> None:
    """The same frames encode to the same bytes whatever the heap held before, so a resumed
    restoration matches an uninterrupted one. Without x264's ``cpu-independent`` its AVX-512
    mb-tree code depended on memory it never wrote: this failed 18 times in 20 on an AVX-512 CPU
    (on other CPUs it passes either way)."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    frames = []
    for index in range(10):  # wrapping ramps that brighten, plus noise: content that showed the fault
        ramps = np.stack([(3 * x + 4 * index) % 256, (5 * y + 2 * index) % 256, 2 * (x + y)], axis=-1)
        frames.append(np.clip(ramps + rng.integers(-20, 20, ramps.shape), 0, 255).astype(np.uint8))
    encoded = []
    for attempt in range(6):
        scribble = [np.random.default_rng(attempt).bytes(size) for size in range(1000, 200_000, 3000)]
        del scribble  # leaves different bytes in the freed heap memory the encoder allocates next
        path = tmp_path / f"{attempt}.mp4"
        with VideoWriter(path, width=WIDTH, height=HEIGHT, fps=FPS) as writer:
            for frame in frames:
                writer.write(frame)
        encoded.append(path.read_bytes())
    decoded = [[frame.rgb for frame in read_all(tmp_path / f"{attempt}.mp4")] for attempt in range(6)]
    for attempt in range(1, 6):
        assert encoded[attempt] == encoded[0], f"encode {attempt} differs from encode 0"
        assert all(np.array_equal(a, b) for a, b in zip(decoded[0], decoded[attempt], strict=True))


@pytest.mark.parametrize(("suffix", "time_base"), [(".mkv", Fraction(1, 1000)), (".mp4", None)])
def test_joined_segments_keep_rate_and_timestamps(suffix: str, time_base: Fraction | None, tmp_path: Path) -> None:
    fps = Fraction(24)  # 1/24 s is no whole number of milliseconds; MKV sources have a 1/1000 time base
    step = 1 / fps / (time_base or 1 / fps)
    parts = []
    for first in (0, 4, 8):  # segments as restore_video writes them: each holds its own timestamps
        part = tmp_path / f"{first:09d}{suffix}"
        with VideoWriter(part, width=WIDTH, height=HEIGHT, fps=fps, time_base=time_base) as writer:
            for index in range(first, first + 4):
                writer.write(gradient(shift=index), pts=round(index * step))
        parts.append(part)
    joined = tmp_path / f"joined{suffix}"
    assert join_videos(parts, joined) == 12
    info = probe(joined)
    assert (info.fps, info.frame_count) == (fps, 12)  # Matroska read 1000 fps, MP4 24.016
    frames = read_all(joined)
    # MP4 moved the later segments by up to 1 ms; MKV segments with different B-frame depths overlapped.
    assert [frame.pts for frame in frames] == [round(index / fps / info.time_base) for index in range(12)]
    segment_frames = [frame.rgb for part in parts for frame in read_all(part)]
    assert all(np.array_equal(a.rgb, b) for a, b in zip(frames, segment_frames, strict=True))


@pytest.mark.parametrize("suffix", [".mkv", ".nut"])
def test_audio_longer_than_video_is_not_taken_for_a_truncated_file(
    suffix: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = make_source(tmp_path / f"source{suffix}")  # 24 frames (0.8 s), 1 s of audio
    info = probe(source)
    if suffix == ".mkv":  # the video's own length, from the tag Matroska keeps per track
        assert (info.frame_count, info.length_is_estimate) == (24, False)
    else:  # NUT knows only the whole file's length: an upper bound
        assert info.frame_count > 24 and info.length_is_estimate
    caplog.set_level(logging.WARNING)
    assert len(read_all(source)) == 24
    assert not [record for record in caplog.records if "truncated" in record.getMessage()]


def test_unsupported_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedFormatError, match="12-bit"):
        VideoWriter(tmp_path / "a.mp4", width=WIDTH, height=HEIGHT, fps=FPS, codec="libx264", bit_depth=12)
    with pytest.raises(UnsupportedFormatError, match="codec"):
        VideoWriter(tmp_path / "a.mp4", width=WIDTH, height=HEIGHT, fps=FPS, codec="mjpeg2000")
    with pytest.raises(UnsupportedFormatError, match="cannot hold"):
        VideoWriter(
            tmp_path / "a.webm", width=WIDTH, height=HEIGHT, fps=FPS, codec="libx264"
        )  # WebM is VP8/VP9/AV1 only
    with pytest.raises(UnsupportedFormatError, match="suffix"):
        VideoWriter(tmp_path / "a.unknown", width=WIDTH, height=HEIGHT, fps=FPS)
    assert list(tmp_path.iterdir()) == []


def test_partial_file_removed_when_writing_fails(tmp_path: Path) -> None:
    output = tmp_path / "out.mkv"
    with pytest.raises(RuntimeError), VideoWriter(output, width=WIDTH, height=HEIGHT, fps=FPS, codec="ffv1") as writer:
        writer.write(gradient())  # FFV1 has no encoder delay: the partial file exists now
        assert (tmp_path / ".out.partial.mkv").exists()
        raise RuntimeError("interrupted")
    with pytest.raises(ValueError), VideoWriter(output, width=WIDTH, height=HEIGHT, fps=FPS) as writer:
        writer.write(gradient(height=HEIGHT + 2))
    assert list(tmp_path.iterdir()) == []


def test_truncated_mp4_is_corrupt(source: Path, tmp_path: Path) -> None:
    truncated = tmp_path / "cut.mp4"
    data = source.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])  # the index (moov) comes last, so it is lost
    with pytest.raises(CorruptMediaError, match=r"cut\.mp4"):
        read_all(truncated)


def test_truncated_mkv_gives_fewer_frames_or_clear_error(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    whole = tmp_path / "whole.mkv"
    with VideoWriter(whole, width=WIDTH, height=HEIGHT, fps=FPS, codec="ffv1") as writer:
        for index in range(24):
            writer.write(gradient(shift=index))
    truncated = tmp_path / "cut.mkv"
    data = whole.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    caplog.set_level(logging.WARNING)
    try:
        frames = read_all(truncated)
    except MediaError as error:
        assert isinstance(error, CorruptMediaError) and "cut.mkv" in str(error)
    else:
        assert 0 < len(frames) < 24
        assert np.array_equal(frames[0].rgb, gradient())
        assert any("cut.mkv" in record.getMessage() and record.levelno == logging.WARNING for record in caplog.records)


def test_damaged_packet_is_skipped_and_the_rest_kept(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clean = tmp_path / "clean.mkv"
    with VideoWriter(clean, width=WIDTH, height=HEIGHT, fps=FPS, codec="ffv1") as writer:  # slice CRCs catch damage
        for index in range(24):
            writer.write(gradient(shift=index))
    with av.open(str(clean)) as container:
        payload = next(
            bytes(packet) for index, packet in enumerate(container.demux(container.streams.video[0])) if index == 10
        )
    data = bytearray(clean.read_bytes())
    start = data.index(payload) + len(payload) // 4  # inside the frame data, container structure intact
    data[start : start + len(payload) // 2] = (
        np.random.default_rng(0).integers(0, 256, len(payload) // 2, dtype=np.uint8).tobytes()
    )
    damaged = tmp_path / "damaged.mkv"
    damaged.write_bytes(bytes(data))
    caplog.set_level(logging.WARNING)
    frames = read_all(damaged)
    assert 20 <= len(frames) < 24
    assert np.array_equal(frames[-1].rgb, gradient(shift=23))
    assert any("skipped undecodable packet" in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize(
    ("name", "content", "error"),
    [("notes.mp4", b"not a video at all\n" * 20, CorruptMediaError), ("empty.mkv", b"", CorruptMediaError)],
)
def test_unreadable_files_raise_errors_naming_them(name: str, content: bytes, error: type, tmp_path: Path) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    for open_it in (probe, VideoReader):
        with pytest.raises(error, match=name):
            open_it(path)
    with pytest.raises(MediaError, match=r"missing\.mp4"):
        probe(tmp_path / "missing.mp4")
