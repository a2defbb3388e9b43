"""What a restored video keeps besides its pictures: pixel shape, interlacing, chroma subsampling,
subtitles, tags and chapters; and damaged timing, truncation and capture audio handled cleanly.

Each source is made here with PyAV in the form the problem takes in real files (DVD-style SAR,
x264 TFF, 4:2:2 masters, SRT in MKV, AVI captures with unlabelled PCM)."""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from vidrestore.cli import main
from vidrestore.engine import Restorer
from vidrestore.errors import MediaError, UnsupportedFormatError
from vidrestore.io import VideoReader, probe
from vidrestore.nets.unet import UNet
from vidrestore import video as video_module
from vidrestore.video import restore_video

WIDTH, HEIGHT, FRAMES = 96, 64, 8
TINY = dict(base_channels=8, channel_multipliers=(1, 2), encoder_blocks=(1, 1), decoder_blocks=(1, 1), middle_blocks=1)


@pytest.fixture(scope="module")
def restorer() -> Restorer:
    torch.manual_seed(0)
    return Restorer(UNet(**TINY), precision="fp32", tile=0)


def pictures(count: int = FRAMES) -> list[np.ndarray]:
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    return [np.stack([(x * 2 + 5 * i) % 256, (y * 3) % 256, (x + y + 9 * i) % 256], axis=-1).astype(np.uint8)
            for i in range(count)]


def make_clip(path: Path, *, codec: str = "libx264", pix_fmt: str = "yuv420p", rate: int = 25, options=None,
              sar: Fraction | None = None, pts: list[int] | None = None, time_base: Fraction | None = None,
              audio: str | None = None, subtitles: bool = False, tags: dict | None = None,
              chapters: list[dict] | None = None, frames: int | None = None, srt: str | None = None) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, pix_fmt
        if time_base:
            stream.time_base = stream.codec_context.time_base = time_base
        if options:
            stream.options = options
        if sar:
            stream.codec_context.sample_aspect_ratio = sar
        for key, value in (tags or {}).items():
            container.metadata[key] = value
        sound = None
        if audio:
            sound = container.add_stream(audio, rate=48000, layout="stereo")
            sound.metadata["language"] = "fra"
            sound.metadata["title"] = "Commentary"
        if subtitles:
            srt_path = path.with_suffix(".srt")
            srt_path.write_text(srt or "1\n00:00:00,000 --> 00:00:00,100\nHello\n\n")
            subtitle_source = av.open(str(srt_path))
            text = container.add_stream_from_template(subtitle_source.streams.subtitles[0])
            text.metadata["language"] = "eng"
        if chapters:
            container.set_chapters(chapters)
        for index, picture in enumerate(pictures()[:frames]):
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format=pix_fmt)
            frame.pts = index if pts is None else pts[index]
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
        if sound is not None:
            samples = np.zeros((1, 2 * 48000 * FRAMES // rate), np.int16)
            frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="stereo")
            frame.sample_rate, frame.pts = 48000, 0
            container.mux(sound.encode(frame))
            container.mux(sound.encode(None))
        if subtitles:
            for packet in subtitle_source.demux():
                if packet.size:
                    packet.stream = text
                    container.mux(packet)
            subtitle_source.close()
    return path


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_anamorphic_pixel_shape_is_kept(restorer, tmp_path, suffix):
    source = make_clip(tmp_path / f"dvd{suffix}", sar=Fraction(8, 9))
    assert probe(source).sample_aspect_ratio == Fraction(8, 9)
    restore_video(source, tmp_path / f"out{suffix}", restorer, progress=False)
    assert probe(tmp_path / f"out{suffix}").sample_aspect_ratio == Fraction(8, 9)


def test_interlaced_input_stays_interlaced_and_is_named(restorer, tmp_path, caplog):
    source = make_clip(tmp_path / "tff.mkv", options={"x264-params": "interlaced=1:tff=1"})
    assert probe(source).interlaced
    with caplog.at_level(logging.WARNING):
        restore_video(source, tmp_path / "out.mkv", restorer, progress=False)
    assert "interlaced (top field first)" in caplog.text
    with av.open(str(tmp_path / "out.mkv")) as container:
        assert container.streams.video[0].codec_context.field_order == probe(source).field_order
        assert next(container.decode(video=0)).interlaced_frame


def comb_energy(rgb: np.ndarray) -> float:
    """How far each line is from the mean of its neighbours: large where two fields disagree."""
    lines = rgb.astype(np.float64)
    return float(np.abs(lines[1:-1] - 0.5 * (lines[:-2] + lines[2:])).mean())


def test_deinterlace_restores_and_writes_progressive_frames(tmp_path, caplog):
    """DV and DVD sources are interlaced: restored as whole frames, the two fields of a moving
    object (combing) went through the net as texture. --deinterlace makes the frames progressive
    with bwdif first: same frames, same timestamps, no combing, written progressive."""
    source = tmp_path / "combed.mkv"
    with av.open(str(source), "w") as container:  # a bright bar moving right, each field a moment apart
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"x264-params": "interlaced=1:tff=1", "crf": "10"}
        for index in range(FRAMES):
            rgb = np.full((HEIGHT, WIDTH, 3), 40, np.uint8)
            rgb[0::2, 6 * index : 6 * index + 16] = 220  # top field
            rgb[1::2, 6 * index + 3 : 6 * index + 19] = 220  # bottom field, later
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    assert probe(source).interlaced
    untouched = Restorer(UNet(**TINY), precision="fp32", tile=0, strength=0.0)  # the frames as they are read
    restore_video(source, tmp_path / "kept.mkv", untouched, temporal=False, progress=False)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert main(["restore", str(source), "-o", str(tmp_path / "progressive.mkv"), "--deinterlace",
                     "--strength", "0", "--no-temporal"]) == 0
    assert "interlaced (top field first)" not in caplog.text
    kept, progressive = (list(VideoReader(tmp_path / name)) for name in ("kept.mkv", "progressive.mkv"))
    assert [f.pts for f in progressive] == [f.pts for f in kept] and len(progressive) == FRAMES
    combed = np.mean([comb_energy(f.rgb) for f in kept])
    assert np.mean([comb_energy(f.rgb) for f in progressive]) < combed / 5
    assert not probe(tmp_path / "progressive.mkv").interlaced and probe(tmp_path / "kept.mkv").interlaced
    with av.open(str(tmp_path / "progressive.mkv")) as container:
        assert not next(container.decode(video=0)).interlaced_frame


def test_deinterlace_leaves_progressive_video_alone(tmp_path):
    """A folder restored with --deinterlace holds progressive files too: bwdif on every frame took
    half of each one's lines from the other half (fine horizontal detail lost)."""
    lines = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    lines[0::2] = 200  # one-line stripes: what a field interpolation destroys
    source = tmp_path / "progressive.mkv"
    with av.open(str(source), "w") as container:
        stream = container.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv444p"
        for _ in range(3):
            for packet in stream.encode(av.VideoFrame.from_ndarray(lines, format="rgb24").reformat(format="yuv444p")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    assert not probe(source).interlaced
    plain = [f.rgb for f in VideoReader(source)]
    assert all(np.array_equal(a, b) for a, b in zip(plain, (f.rgb for f in VideoReader(source, deinterlace=True))))


def test_a_size_change_mid_stream_is_scaled_to_the_streams_size(restorer, tmp_path, caplog):
    """Two MPEG-TS recordings of different sizes joined end to end: the restore crashed with an
    internal error (frames of two sizes in one batch). Frames of another size are scaled to the
    stream's, with a warning."""
    parts = []
    for index, (width, height) in enumerate([(96, 64), (128, 80)]):
        parts.append(tmp_path / f"{index}.ts")
        with av.open(str(parts[-1]), "w", format="mpegts") as container:
            stream = container.add_stream("mpeg2video", rate=25)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            for frame_index in range(8):
                rgb = np.full((height, width, 3), 20 * frame_index, np.uint8)
                for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    joined = tmp_path / "joined.ts"
    joined.write_bytes(b"".join(part.read_bytes() for part in parts))
    with caplog.at_level(logging.WARNING):
        report = restore_video(joined, tmp_path / "out.mkv", restorer, progress=False)
    assert "is 128x80, not the stream's 96x64" in caplog.text and report.frames >= 14
    assert {f.rgb.shape for f in VideoReader(tmp_path / "out.mkv")} == {(64, 96, 3)}


def test_cover_art_and_a_second_video_stream_are_named_when_left_out(restorer, tmp_path, caplog):
    """Music videos and podcasts carry cover art as a one-frame "video" stream: it was dropped
    without a word (subtitles that do not fit are named)."""
    source = tmp_path / "cover.mp4"
    with av.open(str(source), "w") as container:
        video = container.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        cover = container.add_stream("mjpeg", rate=1)
        cover.width, cover.height, cover.pix_fmt = 32, 32, "yuvj420p"
        cover.disposition = av.stream.Disposition.attached_pic
        for index, picture in enumerate(pictures()):
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format="yuv420p")
            frame.pts = index
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        art = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 200, np.uint8), format="rgb24").reformat(format="yuvj420p")
        art.pts = 0
        container.mux(cover.encode(art))
        container.mux(cover.encode(None))
    with caplog.at_level(logging.WARNING):
        restore_video(source, tmp_path / "out.mp4", restorer, segment_frames=2, progress=False)
    assert caplog.text.count("the cover picture (stream 1) is left out: only one video stream is restored (stream 0)") == 1
    assert probe(tmp_path / "out.mp4").frame_count == FRAMES and (probe(tmp_path / "out.mp4").width, ) == (WIDTH, )


def test_subtitles_that_start_together_keep_their_times(restorer, tmp_path, caplog):
    """A sign and a line of dialogue at once: the second was taken for a jump back in time and
    pushed after the first, and every later subtitle with it (the last one past the video's end)."""
    text = ("1\n00:00:00,000 --> 00:00:00,200\nSign\n\n2\n00:00:00,000 --> 00:00:00,200\nDialogue\n\n"
            "3\n00:00:00,240 --> 00:00:00,300\nLater\n\n")
    source = make_clip(tmp_path / "in.mkv", subtitles=True, srt=text)
    restore_video(source, tmp_path / "out.mkv", restorer, progress=False)
    with av.open(str(tmp_path / "out.mkv")) as container:
        events = [(packet.pts, bytes(packet)) for packet in container.demux(container.streams.subtitles[0]) if packet.size]
    assert events == [(0, b"Sign"), (0, b"Dialogue"), (240, b"Later")]
    assert "jump back" not in caplog.text


def test_interlaced_into_a_codec_that_codes_frames_says_so(restorer, tmp_path, caplog):
    source = make_clip(tmp_path / "tff.mkv", options={"x264-params": "interlaced=1:tff=1"})
    with caplog.at_level(logging.WARNING):
        restore_video(source, tmp_path / "out.mkv", restorer, codec="ffv1", progress=False)
    assert caplog.text.count("ffv1 codes the interlaced source as progressive frames") == 1


def test_ffv1_into_mpeg_ts_is_refused_before_any_frame(restorer, tmp_path):
    """MPEG-TS's muxer took FFV1 as a data stream: exit 0 and a file no player shows."""
    source = make_clip(tmp_path / "in.mkv")
    with pytest.raises(UnsupportedFormatError, match=r"\.ts files cannot hold ffv1 video"):
        restore_video(source, tmp_path / "out.ts", restorer, codec="ffv1", progress=False)
    assert not any(tmp_path.glob(".out.ts*")) and not (tmp_path / "out.ts").exists()


@pytest.mark.parametrize("suffix", [".mp4", ".mov", ".ts"])
def test_a_one_frame_clip_encodes_with_x265(restorer, tmp_path, suffix):
    """x265 gave a clip's only frame a decode time of about -9e13, which MP4/MOV refused."""
    source = make_clip(tmp_path / "one.mp4", frames=1)
    restore_video(source, tmp_path / f"out{suffix}", restorer, codec="libx265", progress=False)
    assert probe(tmp_path / f"out{suffix}").frame_count == 1


@pytest.mark.parametrize(("pix_fmt", "kept"), [("yuv422p", "yuv422p"), ("yuv444p", "yuv444p"),
                                               ("yuv422p10le", "yuv422p10le"), ("yuv411p", "yuv422p")])
def test_finer_chroma_than_420_is_kept_on_request(restorer, tmp_path, pix_fmt, kept):
    """4:2:0 by default (High 4:2:2/4:4:4 H.264 does not play in browsers or on phones: DV and
    MJPEG home video must stay playable); chroma="source" keeps a master's."""
    source = make_clip(tmp_path / "master.mkv", codec="ffv1", pix_fmt=pix_fmt)
    restore_video(source, tmp_path / "out.mp4", restorer, progress=False)
    assert probe(tmp_path / "out.mp4").pix_fmt == ("yuv420p10le" if "10" in pix_fmt else "yuv420p")
    restore_video(source, tmp_path / "kept.mp4", restorer, progress=False, chroma="source")
    assert probe(tmp_path / "kept.mp4").pix_fmt == kept


def test_interlaced_with_a_height_x264_cannot_code_as_fields(restorer, tmp_path, caplog):
    """4:2:0 fields need a height divisible by 4 (720×486 NTSC D1 is not): coded progressive, said once
    (it failed at the first segment, after the up-front check had passed)."""
    cut = tmp_path / "d1_66.mkv"  # 66 lines: even, not a multiple of 4
    frames = [p[:66] for p in pictures()]
    with av.open(str(cut), "w") as out:
        stream = out.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = WIDTH, 66, "yuv420p"
        stream.codec_context.field_order = 2
        for index, picture in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(picture), format="rgb24").reformat(format="yuv420p")
            frame.pts = index
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    with caplog.at_level(logging.WARNING):
        restore_video(cut, tmp_path / "out.mp4", restorer, progress=False)
    assert probe(cut).interlaced
    assert caplog.text.count("66 lines cannot be coded interlaced in yuv420p") == 1
    assert probe(tmp_path / "out.mp4").frame_count == FRAMES


def test_a_paletted_video_is_read(tmp_path):
    """swscale reads pal8 but cannot write it: the interpolation check must not stop the reader."""
    path = tmp_path / "pal.mov"
    palette = np.zeros((256, 4), np.uint8)
    palette[:, 0], palette[:, 1], palette[:, 3] = np.arange(256), 255 - np.arange(256), 255
    with av.open(str(path), "w") as container:
        stream = container.add_stream("png", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "pal8"
        for index in range(3):
            indices = ((np.arange(64 * 48).reshape(48, 64) + index) % 256).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray((indices, palette), format="pal8")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with VideoReader(path) as reader:
        frames = list(reader)
    with av.open(str(path)) as container:
        expected = next(container.decode(video=0)).to_ndarray(format="rgb24")
    assert len(frames) == 3 and np.array_equal(frames[0].rgb, expected)


def test_subtitles_tags_and_chapters_are_kept(restorer, tmp_path):
    chapters = [{"id": 1, "start": 0, "end": 160, "time_base": Fraction(1, 1000), "metadata": {"title": "Intro"}},
                {"id": 2, "start": 160, "end": 320, "time_base": Fraction(1, 1000), "metadata": {"title": "Vows"}}]
    source = make_clip(tmp_path / "wedding.mkv", audio="flac", subtitles=True, tags={"title": "Wedding 1987"},
                       chapters=chapters)
    restore_video(source, tmp_path / "out.mkv", restorer, progress=False, segment_frames=3)
    with av.open(str(tmp_path / "out.mkv")) as container:
        assert container.metadata.get("title") == "Wedding 1987"
        assert [c["metadata"].get("title") for c in container.chapters()] == ["Intro", "Vows"]
        audio, = container.streams.audio
        assert (audio.metadata.get("language"), audio.metadata.get("title")) == ("fra", "Commentary")
        text, = container.streams.subtitles
        assert text.metadata.get("language") == "eng"
        assert [bytes(p) for p in container.demux(text) if p.size] == [b"Hello"]


def test_subtitles_an_mp4_cannot_hold_are_named(restorer, tmp_path, caplog):
    source = make_clip(tmp_path / "subs.mkv", subtitles=True)
    with caplog.at_level(logging.WARNING):
        restore_video(source, tmp_path / "out.mp4", restorer, progress=False)
    assert caplog.text.count("subtitle stream 1 (srt) cannot go into .mp4 files") == 1


def test_text_subtitles_are_not_turned_into_a_data_stream_in_mpeg_ts(restorer, tmp_path, caplog):
    source = make_clip(tmp_path / "subs2.mkv", subtitles=True)
    with caplog.at_level(logging.WARNING):
        restore_video(source, tmp_path / "out.ts", restorer, progress=False)
    assert "cannot go into .ts files" in caplog.text
    with av.open(str(tmp_path / "out.ts")) as container:
        assert [s.type for s in container.streams] == ["video"]


def test_capture_audio_with_an_unlabelled_layout_goes_into_mp4(restorer, tmp_path):
    """AVI stores PCM without a channel layout; MP4's muxer refused it only when writing its header,
    after the whole restoration."""
    source = make_clip(tmp_path / "capture.avi", codec="mpeg4", audio="pcm_s16le")
    with av.open(str(source)) as container:
        assert container.streams.audio[0].layout.name == "2 channels"
    restore_video(source, tmp_path / "out.mp4", restorer, progress=False)
    with av.open(str(tmp_path / "out.mp4")) as container:
        assert container.streams.audio[0].layout.name == "stereo"


def test_a_join_the_muxer_refuses_is_retried_with_aac(restorer, tmp_path, monkeypatch):
    source = make_clip(tmp_path / "capture.mkv", audio="pcm_s16le")
    real_join = video_module.join_videos

    def picky_join(*args, transcode_audio=False, **kwargs):
        if not transcode_audio:
            raise MediaError(Path(args[1]), "joining segments failed: Invalid argument")
        return real_join(*args, transcode_audio=transcode_audio, **kwargs)

    monkeypatch.setattr(video_module, "join_videos", picky_join)
    restore_video(source, tmp_path / "out.mkv", restorer, progress=False)
    with av.open(str(tmp_path / "out.mkv")) as container:
        assert container.streams.audio[0].codec_context.name == "aac"


def test_a_repeated_timestamp_moves_by_a_frame(restorer, tmp_path, caplog):
    source = make_clip(tmp_path / "dup.mkv", codec="ffv1", pts=[0, 40, 80, 120, 120, 160, 200, 240],
                       time_base=Fraction(1, 1000))
    with VideoReader(source) as reader:
        assert [f.pts for f in reader] == [0, 40, 80, 120, 160, 200, 240, 280]
    with caplog.at_level(logging.WARNING):
        restore_video(source, tmp_path / "out.mkv", restorer, progress=False)
    assert "does not follow" in caplog.text and len(list(VideoReader(tmp_path / "out.mkv"))) == FRAMES


def test_concatenated_recordings_keep_their_frame_spacing(restorer, tmp_path):
    """Timestamps jumping back where two MPEG-TS recordings were joined (cat a.ts b.ts): each later
    frame keeps its spacing. Moved one 1/90000 s tick at a time they were squeezed into 0.2 ms and
    Matroska's milliseconds merged them; the join failed after the whole restoration."""
    clip = make_clip(tmp_path / "a.ts", codec="mpeg2video")
    (tmp_path / "cat.ts").write_bytes(clip.read_bytes() * 2)
    with VideoReader(tmp_path / "cat.ts") as reader:
        steps = np.diff([f.pts for f in reader])
    assert len(steps) == 2 * FRAMES - 1 and (steps == 3600).all()
    restore_video(tmp_path / "cat.ts", tmp_path / "out.mkv", restorer, progress=False)
    with VideoReader(tmp_path / "out.mkv") as reader:
        times = [f.time for f in reader]
    assert len(times) == 2 * FRAMES and np.allclose(np.diff(times), 0.04, atol=0.0015)


def test_a_variable_frame_rate_mkv_is_not_called_truncated(tiny_model_file, tmp_path, capsys):
    """Matroska has no frame count: duration × average rate over-counts a clip with a gap."""
    source = make_clip(tmp_path / "gap.mkv", pts=[0, 40, 80, 120, 400, 440, 480, 520], time_base=Fraction(1, 1000))
    code = main(["restore", str(source), "-o", str(tmp_path / "out.mkv"), "--model", str(tiny_model_file),
                 "--device", "cpu"])
    assert code == 0 and "incomplete" not in capsys.readouterr().out


def test_segments_of_different_shapes_are_not_joined(tmp_path):
    from vidrestore.io.video import join_videos

    parts = [make_clip(tmp_path / "a.mp4"), make_clip(tmp_path / "b.mp4", pix_fmt="yuv422p")]
    with pytest.raises(MediaError, match="not one restoration's segments"):
        join_videos(parts, tmp_path / "joined.mp4")
    assert not (tmp_path / "joined.mp4").exists()


def test_a_truncated_video_is_restored_and_reported_incomplete(tiny_model_file, tmp_path, capsys):
    good = make_clip(tmp_path / "good.mkv", codec="ffv1")
    data = good.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: int(len(data) * 0.7)])
    code = main(["restore", str(cut), "-o", str(tmp_path / "out.mkv"), "--model", str(tiny_model_file),
                 "--device", "cpu"])
    captured = capsys.readouterr()
    assert code == 1
    assert "restored 1 (1 incomplete), skipped 0, failed 0" in captured.out
    assert "incomplete:" in captured.err and "announced, the last at" in captured.err
    assert 0 < probe(tmp_path / "out.mkv").frame_count < FRAMES


@pytest.fixture(scope="module")
def tiny_model_file(tmp_path_factory) -> Path:
    from vidrestore.weights import save_generator

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    save_generator(path, UNet(**TINY), TINY)
    return path
