"""Tests for the VapourSynth filter (plugins/vidrestore_vs): real VapourSynth, real models, no mocks.

Clips are small (96×64, a dozen frames) and built in VapourSynth from numpy pictures. Two tiny
UNets: the untrained one is exactly the identity (its tail is zero), which isolates the colour
conversions; a perturbed one changes every pixel, so order, caching and batching mistakes show
up as byte differences.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch

vs = pytest.importorskip("vapoursynth")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))  # until pyproject.toml lists plugins/ as a package root

import vidrestore_vs as vr  # noqa: E402
from vidrestore import Restorer, weights  # noqa: E402
from vidrestore.io import Frame  # noqa: E402
from vidrestore.nets.unet import UNet  # noqa: E402
from vidrestore.temporal import TemporalConfig  # noqa: E402
from vidrestore.video import restore_frames  # noqa: E402
from vidrestore.weights import default_model_path, save_generator  # noqa: E402

core = vs.core
HEIGHT, WIDTH = 64, 96
TINY = {"base_channels": 8, "channel_multipliers": (1, 2), "encoder_blocks": (1, 1), "decoder_blocks": (1, 1),
        "middle_blocks": 1}
VSPIPE = Path(sys.executable).with_name("vspipe")


def tiny_unet(perturbation: float = 0.0, seed: int = 0) -> UNet:
    torch.manual_seed(seed)
    model = UNet(**TINY)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(perturbation * torch.randn_like(parameter))
    return model


@pytest.fixture(scope="module")
def identity() -> Restorer:
    return Restorer(tiny_unet(), device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def perturbed() -> Restorer:
    return Restorer(tiny_unet(0.03), device="cpu", precision="fp32")


@pytest.fixture
def threads():
    """Run with several VapourSynth threads; restore the core's setting afterwards."""
    before = core.num_threads
    core.num_threads = 4
    yield 4
    core.num_threads = before


# ------------------------------------------------------------------------------ clips


def pictures(count: int, *, seed: int = 0, cut_at: int | None = None) -> list[np.ndarray]:
    """Float32 (H, W, 3) pictures in [0.1, 0.9]: gradients plus texture panning 2 px a frame.

    From ``cut_at`` on the picture is a different shot (a cut ``is_scene_cut`` detects).
    """
    rng = np.random.default_rng(seed)
    texture = rng.random((HEIGHT, WIDTH + 2 * count), dtype=np.float32)
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    out = []
    for index in range(count):
        pan = texture[:, 2 * index : 2 * index + WIDTH]
        picture = np.stack([x / WIDTH, y / HEIGHT, 0.5 + 0.4 * np.sin((x + 2 * index) / 9.0)], axis=-1)
        picture = 0.1 + 0.7 * picture + 0.1 * pan[..., None]
        if cut_at is not None and index >= cut_at:
            picture = 1.0 - picture[::-1]
        out.append(np.ascontiguousarray(picture, dtype=np.float32))
    return out


def clip_from(images: list[np.ndarray]) -> vs.VideoNode:
    """An RGBS clip (24 fps) showing ``images``."""
    blank = core.std.BlankClip(format=vs.RGBS, width=WIDTH, height=HEIGHT, length=len(images))

    def write(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
        out = f.copy()
        for plane in range(3):
            np.copyto(np.asarray(out[plane]), images[n][..., plane])
        return out

    return core.std.ModifyFrame(blank, blank, write)


def in_format(clip: vs.VideoNode, name: str) -> vs.VideoNode:
    """``clip`` (RGBS) converted to the preset ``name``; YUV/GRAY as BT.709 limited range (props set)."""
    fmt = getattr(vs, name)
    if name.startswith("RGB"):
        return core.resize.Bicubic(clip, format=fmt)
    return core.resize.Bicubic(clip, format=fmt, matrix=1, range=0)


def planes(frame: vs.VideoFrame) -> list[np.ndarray]:
    return [np.array(frame[plane]) for plane in range(frame.format.num_planes)]


def frame_bytes(frame: vs.VideoFrame) -> bytes:
    return b"".join(plane.tobytes() for plane in planes(frame))


def code_value(fmt: vs.VideoFormat) -> float:
    """One step of the format: one integer code, or float32/float16 rounding."""
    if fmt.sample_type == vs.INTEGER:
        return 1.0
    return 1e-3 if fmt.bits_per_sample == 16 else 1e-5


# ------------------------------------------------------------------------------ formats


FORMATS = ["RGB24", "RGB48", "RGBS", "RGBH", "YUV420P8", "YUV420P10", "YUV444P16", "YUV422P8", "YUV444PS",
           "GRAY8", "GRAY16"]


@pytest.mark.parametrize("name", FORMATS)
def test_identity_model_round_trips_every_format(identity: Restorer, name: str) -> None:
    """Input format → RGBS → model (identity) → input format again, within one code value."""
    source = in_format(clip_from(pictures(3)), name)
    restored = vr.restore(source, restorer=identity, temporal=False)
    assert restored.format.id == source.format.id
    assert (restored.num_frames, restored.fps, restored.width, restored.height) == (
        source.num_frames, source.fps, source.width, source.height)
    for got, expected in zip(restored.frames(), source.frames()):
        for got_plane, expected_plane in zip(planes(got), planes(expected)):
            difference = np.abs(got_plane.astype(np.float64) - expected_plane.astype(np.float64))
            assert difference.max() <= code_value(source.format), name


@pytest.mark.parametrize("name", ["YUV420P8", "YUV444P16", "YUV422P8", "YUV444PS", "RGB24", "RGBH", "GRAY8"])
def test_the_model_sees_what_resize_to_rgbs_makes(perturbed: Restorer, name: str) -> None:
    """A non-identity model gets exactly the RGBS picture core.resize makes from the frame's props."""
    source = in_format(clip_from(pictures(3)), name)
    through_filter = vr.restore(source, restorer=perturbed, temporal=False, format=vs.RGBS)
    by_hand = vr.restore(core.resize.Bicubic(source, format=vs.RGBS), restorer=perturbed, temporal=False)
    for got, expected in zip(through_filter.frames(), by_hand.frames()):
        assert frame_bytes(got) == frame_bytes(expected)
    unrestored = core.resize.Bicubic(source, format=vs.RGBS).get_frame(0)
    assert np.abs(planes(through_filter.get_frame(0))[0] - planes(unrestored)[0]).mean() > 0.01


@pytest.mark.filterwarnings("ignore:The _ColorRange frame property has been deprecated")
def test_colour_props_are_read_per_frame_with_defaults_where_missing(identity: Restorer) -> None:
    """Frames tagged BT.709/limited, BT.2020/full, and untagged (SD → BT.601 limited) decode to the same RGB."""
    images = pictures(2)
    rgbs = clip_from(images)
    bt709 = core.resize.Bicubic(rgbs, format=vs.YUV444P16, matrix=1, range=0)
    bt2020_full = core.resize.Bicubic(rgbs, format=vs.YUV444P16, matrix=9, range=1)
    untagged = core.std.RemoveFrameProps(core.resize.Bicubic(rgbs, format=vs.YUV444P16, matrix=6, range=0),
                                         props=["_Matrix", "_Range", "_ChromaLocation"])
    legacy_full = core.std.RemoveFrameProps(bt2020_full, props=["_Range"]).std.SetFrameProps(_ColorRange=0)
    spliced = bt709 + bt2020_full + untagged + legacy_full
    restored = vr.restore(spliced, restorer=identity, temporal=False, format=vs.RGBS)
    for index, frame in enumerate(restored.frames()):
        rgb = np.stack(planes(frame), axis=-1)
        assert np.abs(rgb - images[index % 2]).max() < 1e-3, index


def test_a_smooth_clip_changes_little(perturbed: Restorer) -> None:
    mild = Restorer(tiny_unet(0.004), device="cpu", precision="fp32")
    source = in_format(clip_from(pictures(4)), "YUV420P8")
    restored = vr.restore(source, restorer=mild, temporal_radius=1)
    differences = [np.abs(a.astype(np.int32) - b).mean()
                   for got, expected in zip(restored.frames(), source.frames())
                   for a, b in zip(planes(got), planes(expected))]
    assert 0 < np.mean(differences) < 3.0  # mean absolute difference in 8-bit codes


@pytest.mark.skipif(not default_model_path().is_file(), reason="no shipped model in vidrestore/weights")
def test_the_shipped_model_leaves_a_clean_smooth_clip_nearly_alone() -> None:
    # Smooth: gradients and a sinusoid only. (``pictures`` adds i.i.d. per-pixel texture, which
    # no denoiser can tell from noise, so it is not a "clean" clip for this check.)
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    smooth = [np.ascontiguousarray(np.stack([0.1 + 0.7 * x / WIDTH, 0.1 + 0.7 * y / HEIGHT,
                                             0.5 + 0.3 * np.sin((x + 2 * i) / 9.0)], axis=-1), dtype=np.float32)
              for i in range(3)]
    source = in_format(clip_from(smooth), "YUV420P8")
    restored = vr.restore(source, device="cpu", temporal=False)
    difference = [np.abs(planes(a)[0].astype(np.int32) - planes(b)[0]).mean()
                  for a, b in zip(restored.frames(), source.frames())]
    assert np.mean(difference) < 2.0


def test_gray_is_restored_like_the_engine_restores_gray(perturbed: Restorer) -> None:
    """GRAY: R = G = B into the model, BT.601 luma of the result out (what Restorer does with 1 channel)."""
    gray = in_format(clip_from(pictures(2)), "GRAY16")
    restored = vr.restore(gray, restorer=perturbed, temporal=False)
    assert restored.format.id == vs.GRAY16
    black, scale = 16 << 8, 219 << 8  # 16-bit limited range
    unit = (np.asarray(gray.get_frame(1)[0]).astype(np.float32) - black) / scale
    luma = perturbed(np.repeat(unit[None, ..., None], 3, axis=-1))[0] @ np.float32([0.299, 0.587, 0.114])
    expected = np.clip(np.rint(luma * scale + black), 0, 65535)
    assert np.abs(np.asarray(restored.get_frame(1)[0]) - expected).max() <= 2


# ------------------------------------------------------------------------------ props, timing, format=


def tagged_clip(count: int = 6) -> vs.VideoNode:
    source = in_format(clip_from(pictures(count)), "YUV420P8")
    source = core.std.AssumeFPS(source, fpsnum=30000, fpsden=1001)
    source = core.std.SetFrameProps(source, _ChromaLocation=0, Source="test", _SceneChangeNext=0)

    def stamp(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
        out = f.copy()
        out.props["_AbsoluteTime"] = n * 1001 / 30000
        out.props["_SceneChangePrev"] = int(n == 3)
        return out

    return core.std.ModifyFrame(source, source, stamp)


def test_frame_count_rate_and_props_are_kept(identity: Restorer) -> None:
    source = tagged_clip()
    restored = vr.restore(source, restorer=identity)
    assert (restored.num_frames, restored.fps_num, restored.fps_den) == (6, 30000, 1001)
    for got, expected in zip(restored.frames(), source.frames()):
        assert dict(got.props) == dict(expected.props)


def test_props_of_a_new_colour_family_describe_it(identity: Restorer) -> None:
    source = tagged_clip()
    restored = vr.restore(source, restorer=identity, format=vs.RGB24)
    assert restored.format.id == vs.RGB24
    props = dict(restored.get_frame(3).props)
    assert props["_Matrix"] == 0 and props["_Range"] == 1 and "_ChromaLocation" not in props
    assert props["_SceneChangePrev"] == 1 and props["Source"] == "test"
    assert props["_AbsoluteTime"] == pytest.approx(3 * 1001 / 30000)
    back = vr.restore(core.std.RemoveFrameProps(restored, props=["_Matrix", "_Range"]), restorer=identity,
                      format=vs.YUV420P8, temporal=False)
    assert dict(back.get_frame(0).props)["_Matrix"] == 6  # 96×64 is SD: BT.601, as vstools picks


# ------------------------------------------------------------------------------ order, threads, caching


def test_any_order_and_any_thread_gives_the_same_bytes(perturbed: Restorer, threads: int) -> None:
    """Sequential, reversed, shuffled, one frame per filter instance, async and thread-pool requests agree."""
    source = tagged_clip(13)  # a prop cut at 3, a partial last chunk
    other_shot = in_format(clip_from(pictures(5, seed=1, cut_at=0)), "YUV420P8")
    source = source[:8] + core.std.AssumeFPS(other_shot, source)  # and a visible cut at 8

    def fresh() -> vs.VideoNode:
        return vr.restore(source, restorer=perturbed, batch_size=3, temporal_radius=2, format=vs.RGBS)

    count = source.num_frames
    sequential = [frame_bytes(frame) for frame in fresh().frames()]
    assert len(set(sequential)) == count

    clip = fresh()
    assert [frame_bytes(clip.get_frame(n)) for n in reversed(range(count))] == sequential[::-1]
    order = list(range(count))
    random.Random(0).shuffle(order)
    clip = fresh()
    assert {n: frame_bytes(clip.get_frame(n)) for n in order} == dict(enumerate(sequential))
    for n in (0, 5, 8, count - 1):
        assert frame_bytes(fresh().get_frame(n)) == sequential[n]

    clip = fresh()
    futures = {n: clip.get_frame_async(n) for n in order}
    assert {n: frame_bytes(future.result()) for n, future in futures.items()} == dict(enumerate(sequential))
    clip = fresh()
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda n: (n, frame_bytes(clip.get_frame(n))), order + order[::-1]))
    assert all(data == sequential[n] for n, data in results)


class CountingRestorer:
    """A real Restorer that counts the frames it is asked to restore."""

    def __init__(self, restorer: Restorer) -> None:
        self.restorer, self.frames, self.lock = restorer, 0, threading.Lock()

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        with self.lock:
            self.frames += len(frames)
        return self.restorer(frames)


def test_each_frame_is_restored_once_in_order_and_in_parallel(perturbed: Restorer, threads: int) -> None:
    source = in_format(clip_from(pictures(20)), "YUV420P8")
    counting = CountingRestorer(perturbed)
    for _ in vr.restore(source, restorer=counting, batch_size=4).frames():
        pass
    assert counting.frames == 20

    # As vspipe and previewers read: one request per thread in flight, taken in order. (All 20 at
    # once may evict a chunk still needed later under load; it is then restored again, with the
    # same bytes — see test_any_order_and_any_thread_gives_the_same_bytes.)
    counting = CountingRestorer(perturbed)
    clip = vr.restore(source, restorer=counting, batch_size=4)
    in_flight = deque(clip.get_frame_async(n) for n in range(core.num_threads))
    for n in range(core.num_threads, 20 + core.num_threads):
        in_flight.popleft().result()
        if n < 20:
            in_flight.append(clip.get_frame_async(n))
    assert counting.frames == 20


def test_the_filter_matches_the_file_pipeline(perturbed: Restorer) -> None:
    """Same batches, same window, same cut rule: RGB24 through the filter ≈ vidrestore.video.restore_frames."""
    images = pictures(10, cut_at=6)
    source = core.resize.Point(clip_from(images), format=vs.RGB24)
    decoded = [np.stack(planes(frame), axis=-1) for frame in source.frames()]
    frames = [Frame(index=n, pts=n, time=n / 24, rgb=rgb) for n, rgb in enumerate(decoded)]
    expected = [frame.rgb for frame in restore_frames(frames, perturbed, temporal=TemporalConfig(radius=2),
                                                      batch_size=4)]
    got = [np.stack(planes(frame), axis=-1) for frame in vr.restore(source, restorer=perturbed, batch_size=4).frames()]
    for got_rgb, expected_rgb in zip(got, expected, strict=True):
        difference = np.abs(got_rgb.astype(np.int32) - expected_rgb)
        assert difference.max() <= 1 and (difference == 0).mean() > 0.99


def restored_alone(source: vs.VideoNode, restorer: Restorer, n: int) -> bytes:
    """Frame ``n`` converted to RGBS as the filter converts it, then restored in a batch of one."""
    rgb = np.stack(planes(core.resize.Bicubic(source, format=vs.RGBS).get_frame(n)), axis=-1)
    return b"".join(np.ascontiguousarray(restorer(rgb[None])[0][..., plane]).tobytes() for plane in range(3))


def test_a_one_frame_clip_is_restored(perturbed: Restorer) -> None:
    """Default options: the window and the first chunk are both cut to the one frame."""
    source = in_format(clip_from(pictures(1)), "YUV420P8")
    restored = vr.restore(source, restorer=perturbed, format=vs.RGBS)
    assert frame_bytes(restored.get_frame(0)) == restored_alone(source, perturbed, 0)
    assert vr.restore(source, restorer=perturbed).get_frame(0).format.id == vs.YUV420P8


@pytest.mark.parametrize("options", [{"temporal": False}, {"temporal_radius": 0}, {"temporal_strength": 0.0}])
def test_a_one_frame_window_restores_each_frame_alone(perturbed: Restorer, options: dict) -> None:
    """No temporal fusion and batch_size=1: output n is source frame n through the Restorer alone."""
    source = in_format(clip_from(pictures(4)), "YUV420P8")
    restored = vr.restore(source, restorer=perturbed, batch_size=1, format=vs.RGBS, **options)
    for n in reversed(range(source.num_frames)):
        assert frame_bytes(restored.get_frame(n)) == restored_alone(source, perturbed, n), n


def restored_bytes(clip: vs.VideoNode, restorer: Restorer, **options: object) -> list[bytes]:
    return [frame_bytes(f) for f in vr.restore(clip, restorer=restorer, batch_size=1, format=vs.RGBS,
                                               **options).frames()]


@pytest.mark.parametrize("marker", ["prev", "next", "picture"])
def test_no_frame_uses_a_neighbour_across_a_scene_cut(perturbed: Restorer, marker: str) -> None:
    """With a cut before frame 4, frames 0-3 come out as if the clip ended at 3, and 4-7 as if it began at 4."""
    source = in_format(clip_from(pictures(8, cut_at=4 if marker == "picture" else None)), "YUV444P16")
    if marker == "prev":
        source = source[:4] + core.std.SetFrameProps(source[4], _SceneChangePrev=1) + source[5:]
    elif marker == "next":
        source = source[:3] + core.std.SetFrameProps(source[3], _SceneChangeNext=1) + source[4:]
    whole = restored_bytes(source, perturbed)
    assert whole == restored_bytes(source[:4], perturbed) + restored_bytes(source[4:], perturbed)
    if marker != "picture":  # without the marker the neighbours across it are used
        unmarked = core.std.RemoveFrameProps(source, props=["_SceneChangePrev", "_SceneChangeNext"])
        assert restored_bytes(unmarked, perturbed)[3] != whole[3]


def test_the_cache_is_bounded_and_computes_each_key_once() -> None:
    cache = vr._OnceCache(3)
    calls: list[int] = []
    barrier = threading.Barrier(6)

    def slow(key: int) -> int:
        calls.append(key)
        time.sleep(0.05)
        return key * 10

    def ask(key: int) -> int:
        barrier.wait()
        return cache.get(key, lambda: slow(key))

    with ThreadPoolExecutor(max_workers=6) as pool:
        assert list(pool.map(ask, [7] * 6)) == [70] * 6
    assert calls == [7]
    for key in range(100):
        cache.get(key, lambda key=key: key)
        assert len(cache) <= 3

    def failing() -> int:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        cache.get("bad", failing)
    assert cache.get("bad", lambda: 1) == 1  # a failure is not cached


# ------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("clip", "options", "message"),
    [
        (lambda: core.std.BlankClip(length=2, varformat=True), {}, "variable format"),
        (lambda: core.std.BlankClip(length=2, varsize=True), {}, "variable size"),
        (lambda: core.std.BlankClip(length=2, format=core.query_video_format(vs.YUV, vs.INTEGER, 32, 0, 0).id), {},
         "8-16 bit integer"),
        (lambda: core.std.BlankClip(length=2, format=vs.YUV420P8), {"format": vs.GRAY32}, "8-16 bit integer"),
        (lambda: core.std.BlankClip(length=2), {"format": 12345}, "not a video format"),
        (lambda: core.std.BlankClip(length=2, width=65), {"format": vs.YUV420P8}, "cannot be subsampled"),
        (lambda: core.std.BlankClip(length=2), {"temporal_strength": 2.0}, "temporal_strength"),
        (lambda: core.std.BlankClip(length=2), {"batch_size": 0}, "batch_size"),
        (lambda: core.std.BlankClip(length=2), {"strength": 2.0}, "strength must be a number"),
        (lambda: core.std.BlankClip(length=2), {"correction_floor": -1.0}, "correction_floor must be a number"),
        (lambda: core.std.BlankClip(length=2), {"model": "/nonexistent/model.safetensors"}, "not found"),
    ],
)
def test_bad_input_raises_a_clear_vs_error(clip, options: dict, message: str) -> None:
    with pytest.raises(vs.Error, match=message):
        vr.restore(clip(), **options)


def test_the_model_hint_is_given_only_when_the_shipped_model_fails(tmp_path: Path, monkeypatch) -> None:
    with pytest.raises(vs.Error, match="strength must be a number") as bad_option:
        vr.restore(core.std.BlankClip(length=2), strength=2.0)
    assert "model=PATH" not in str(bad_option.value)
    monkeypatch.setattr(weights, "default_model_path", lambda: tmp_path / "missing.safetensors")
    with pytest.raises(vs.Error, match=r"model file not found \(pass model=PATH"):
        vr.restore(core.std.BlankClip(length=2), device="cpu")


def test_numbers_from_numpy_are_numbers(identity: Restorer) -> None:
    source = in_format(clip_from(pictures(3)), "YUV420P8")
    plain = vr.restore(source, restorer=identity, batch_size=2, temporal_radius=1)
    from_numpy = vr.restore(source, restorer=identity, batch_size=np.int64(2), temporal_radius=np.int64(1))
    assert [frame_bytes(f) for f in from_numpy.frames()] == [frame_bytes(f) for f in plain.frames()]
    with pytest.raises(vs.Error, match="batch_size must be an integer >= 1, got np.float64"):
        vr.restore(source, restorer=identity, batch_size=np.float64(2))


def test_a_shared_restorer_excludes_model_options(identity: Restorer) -> None:
    with pytest.raises(vs.Error, match="model, tile belong to the Restorer"):
        vr.restore(core.std.BlankClip(length=2), restorer=identity, model="x.safetensors", tile=256)


@pytest.mark.parametrize("name", ["YUV420P8", "YUV420P10", "YUV422P8", "YUV444P8", "GRAY8", "RGB24"])
def test_strength_zero_gives_the_clip_back(tiny_model_file: Path, identity: Restorer, name: str) -> None:
    """Bit-exact, subsampled chroma included (it is the correction that is converted back, not
    the picture: bicubic chroma up to RGB and down again alone lost detail), pass after pass."""
    source = in_format(clip_from(pictures(3)), name)
    untouched = vr.restore(source, model=str(tiny_model_file), device="cpu", precision="fp32", strength=0.0,
                           temporal=False)
    twice = vr.restore(untouched, restorer=identity, temporal=False)
    assert [frame_bytes(f) for f in twice.frames()] == [frame_bytes(f) for f in untouched.frames()] == [
        frame_bytes(f) for f in source.frames()]
    if name != "YUV420P8":
        return
    changed = vr.restore(source, model=str(tiny_model_file), device="cpu", precision="fp32", temporal=False)
    assert [frame_bytes(f) for f in changed.frames()] != [frame_bytes(f) for f in untouched.frames()]
    with pytest.raises(vs.Error, match="strength belongs to the Restorer"):
        vr.restore(source, restorer=identity, strength=0.5)
    with pytest.raises(vs.Error, match="correction_floor belongs to the Restorer"):
        vr.restore(source, restorer=identity, correction_floor=2.0)


@pytest.mark.parametrize("name,out_name", [("YUV420P8", "YUV420P10"), ("YUV420P8", "YUV420PS"), ("YUV420P10", "YUV420P8"),
                                           ("YUV420PS", "YUV420PS"), ("YUV422P8", "YUV422P16")])
def test_another_depth_keeps_the_clips_own_chroma(identity: Restorer, name: str, out_name: str) -> None:
    """format=vs.YUV420P10 (the README's example) took the picture to RGB and back: chroma at a
    saturated edge moved by up to 16 levels with no correction at all. Now it is the clip, at the
    new depth, plus the correction; float input comes back bit-exact (it was one ulp off)."""
    source = in_format(clip_from(pictures(2)), name)
    restored = vr.restore(source, restorer=identity, temporal=False, format=getattr(vs, out_name))
    at_depth = core.resize.Point(source, format=getattr(vs, out_name))  # the same samples, at the new depth
    if restored.format.bits_per_sample >= source.format.bits_per_sample:
        assert [frame_bytes(f) for f in restored.frames()] == [frame_bytes(f) for f in at_depth.frames()]
    else:  # fewer bits: a tie may round the other way
        for got, want in zip(restored.frames(), at_depth.frames()):
            assert max(np.abs(a.astype(int) - b).max() for a, b in zip(planes(got), planes(want))) <= 1


def test_a_subsampled_clip_gets_its_own_chroma_plus_the_correction(perturbed: Restorer) -> None:
    """Output = input + the correction converted to the clip's format (within a code of rounding)."""
    source = in_format(clip_from(pictures(2)), "YUV420P16")
    restored = vr.restore(source, restorer=perturbed, temporal=False)
    rgbs = core.resize.Bicubic(source, format=vs.RGBS)
    by_hand = vr.restore(rgbs, restorer=perturbed, temporal=False)
    float_format = core.query_video_format(vs.YUV, vs.FLOAT, 32, 1, 1).id
    after, before, base = (core.resize.Bicubic(c, format=float_format, matrix=1, range=0).get_frame(1)
                           for c in (by_hand, rgbs, source))
    for plane, (a, b, c) in enumerate(zip(planes(after), planes(before), planes(base))):
        scale = (219 if plane == 0 else 224) << 8
        expected = np.asarray(source.get_frame(1)[plane]).astype(np.float64) + (a - b) * scale
        assert np.abs(np.asarray(restored.get_frame(1)[plane]) - expected).max() <= 1.0, plane
    assert np.abs(planes(restored.get_frame(1))[1].astype(int) - planes(source.get_frame(1))[1]).max() > 100


def test_an_untagged_clip_gets_the_file_pipelines_matrix(identity: Restorer) -> None:
    """Untagged YUV: BT.601 up to 1024×576, BT.709 above — by width too (1280×536 scope HD) — as the
    file pipeline decodes it, so both surfaces give the model the same RGB."""
    from vidrestore.io.video import default_matrix

    for width, height, matrix in ((720, 480, 6), (720, 576, 6), (1280, 536, 1), (1024, 578, 1), (3840, 2160, 1)):
        assert default_matrix(width, height) == matrix
        assert vr._default_matrix(width, height) in ((5,) if height == 576 else (matrix,))
    tagged = core.std.BlankClip(format=vs.YUV420P8, width=1280, height=536, length=1, color=[120, 90, 200])
    untagged = core.std.RemoveFrameProps(tagged, props=["_Matrix"])
    seen = vr.restore(untagged, restorer=identity, temporal=False, format=vs.RGBS).get_frame(0)
    expected = core.resize.Bicubic(untagged, format=vs.RGBS, matrix_in=1, range_in=0).get_frame(0)
    assert max(np.abs(a - b).max() for a, b in zip(planes(seen), planes(expected))) < 1e-3


@pytest.mark.parametrize("props", [{"_Matrix": 3}, {"_ChromaLocation": 9}, {"_Matrix": 2, "_ChromaLocation": -1},
                                   {"_Matrix": 0}, {"_Matrix": 11}, {"_Matrix": 99}])
def test_reserved_colour_props_fall_back_to_the_defaults(identity: Restorer, props: dict) -> None:
    """resize prefers a frame's props to its arguments: the filter's fallbacks must reach it."""
    source = in_format(clip_from(pictures(1)), "YUV420P8")
    untagged = core.std.RemoveFrameProps(source, props=["_Matrix", "_ChromaLocation"])
    expected = vr.restore(untagged, restorer=identity, temporal=False, format=vs.RGBS).get_frame(0)
    got = vr.restore(core.std.SetFrameProps(untagged, **props), restorer=identity, temporal=False,
                     format=vs.RGBS).get_frame(0)
    assert frame_bytes(got) == frame_bytes(expected)


@pytest.mark.parametrize("name", ["YUV420P10", "YUV444P16"])
@pytest.mark.parametrize("tags", [(10, 9, 14), (10, 2, 2), (10, 9, 99), (12, 1, 1), (12, 1, 2), (13, 9, 14),
                                  (14, 9, 16)])
def test_matrices_defined_by_primaries_and_transfer(identity: Restorer, perturbed: Restorer, name: str,
                                                    tags: tuple) -> None:
    """BT.2020 constant luminance, the chromaticity-derived matrices and ICtCp need the frame's
    primaries and transfer: the filter dropped them and resize failed on the first frame."""
    matrix, primaries, transfer = tags
    # Unspecified, or a curve CL cannot have: BT.2020 CL's own; NCL chromaticity-derived ignores the curve.
    real = (9, 14) if matrix == 10 and (primaries, transfer) != (9, 14) else (primaries, 1 if transfer == 2 else transfer)
    encoded = core.resize.Bicubic(clip_from(pictures(2)), format=getattr(vs, name), matrix=matrix, range=0,
                                  primaries=real[0], transfer=real[1], primaries_in=real[0], transfer_in=real[1])
    source = core.std.SetFrameProps(encoded, _Primaries=primaries, _Transfer=transfer)
    seen = vr.restore(source, restorer=identity, temporal=False, format=vs.RGBS).get_frame(1)
    expected = core.resize.Bicubic(core.std.RemoveFrameProps(source, props=["_Primaries", "_Transfer"]),
                                   format=vs.RGBS, matrix_in=matrix, primaries_in=real[0],
                                   transfer_in=real[1]).get_frame(1)
    assert max(np.abs(a - b).max() for a, b in zip(planes(seen), planes(expected))) < 1e-3
    def error(frame: vs.VideoFrame) -> int:
        return max(np.abs(a.astype(np.int64) - b).max() for a, b in zip(planes(frame), planes(source.get_frame(1))))

    back = vr.restore(source, restorer=identity, temporal=False).get_frame(1)
    # The identity model: the clip comes back, as exactly as resize's own round trip gives it
    # (its transfer curves are tabulated: up to 25 codes of 65535 for ICtCp).
    plain = core.resize.Bicubic(core.resize.Bicubic(encoded, format=vs.RGBS, matrix_in=matrix, primaries_in=real[0],
                                                    transfer_in=real[1]),
                                format=source.format, matrix=matrix, range=0, primaries=real[0], transfer=real[1],
                                primaries_in=real[0], transfer_in=real[1])
    assert error(back) <= error(plain.get_frame(1)) + 1
    assert back.props["_Matrix"] == matrix
    # A model that changes the picture: its RGB output goes back to YUV with the same description
    # (for 4:2:0 as the correction, whose conversions cancel only for the identity model).
    changed = vr.restore(source, restorer=perturbed, temporal=False)
    changed_rgb = vr.restore(source, restorer=perturbed, temporal=False, format=vs.RGBS)
    direct = core.resize.Bicubic(core.std.RemoveFrameProps(changed_rgb, props=["_Primaries", "_Transfer"]),
                                 format=source.format, matrix=matrix, range=0, primaries=real[0],
                                 transfer=real[1], primaries_in=real[0], transfer_in=real[1])
    offsets = [np.abs(a.astype(np.float64) - b).mean() for a, b in zip(planes(changed.get_frame(1)),
                                                                       planes(direct.get_frame(1)))]
    top = (1 << source.format.bits_per_sample) - 1
    assert max(offsets) < 0.002 * top, offsets  # 2 codes of 1023; a wrong curve or matrix is far more


def test_nan_names_the_source_frame_and_a_bad_restorer_output_is_refused(identity: Restorer) -> None:
    """The engine's "frames [1] have NaN" counted inside a batch of four; a restorer handing back
    0-255 integers saturated every pixel without a word; temporal="no" switched the stage on."""
    clean = clip_from(pictures(8))

    def put_nan(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
        out = f.copy()
        if n == 5:
            np.asarray(out[0])[3, 3] = np.nan
        return out

    broken = vr.restore(core.std.ModifyFrame(clean, clean, put_nan), restorer=identity, temporal=False)
    for n in (4, 5):
        with pytest.raises(vs.Error, match="source frame 5 has NaN or infinite pixels; frames 4-7 are restored together"):
            broken.get_frame(n)
    assert broken.get_frame(3) is not None
    to_bytes = vr.restore(clean, restorer=lambda batch: (batch * 255).astype(np.uint8), temporal=False)
    with pytest.raises(vs.Error, match="returned uint8 pixels; it must return float RGB"):
        to_bytes.get_frame(0)
    with pytest.raises(vs.Error, match="temporal must be True or False"):
        vr.restore(clean, restorer=identity, temporal="no")
    assert vr.restore(clean, restorer=identity, temporal=0).get_frame(0) is not None


def test_a_matrix_without_the_tags_it_needs_is_a_clear_error(identity: Restorer) -> None:
    source = in_format(clip_from(pictures(1)), "YUV444P8")
    for props, message in (({"_Matrix": 12, "_Primaries": 2}, r"_Matrix 12 needs _Primaries in \[1, 4, .*\(it has 2\)"),
                           ({"_Matrix": 13, "_Primaries": 1}, r"_Matrix 13 needs _Transfer in .*\(it has none\)"),
                           ({"_Matrix": 13, "_Primaries": 1, "_Transfer": 99}, r"_Transfer in .*\(it has 99\)"),
                           ({"_Matrix": 14, "_Transfer": 1}, r"_Matrix 14 needs _Transfer in \[16, 18\]")):
        clip = vr.restore(core.std.SetFrameProps(core.std.RemoveFrameProps(source, props=["_Primaries", "_Transfer"]),
                                                 **props), restorer=identity, temporal=False)
        with pytest.raises(vs.Error, match=message):
            clip.get_frame(0)


@pytest.mark.parametrize("name", ["RGB24", "YUV444P8", "YUV420P8"])
def test_gray_in_with_a_colour_format_out_stays_gray(perturbed: Restorer, name: str) -> None:
    gray = in_format(clip_from(pictures(2)), "GRAY8")
    out = planes(vr.restore(gray, restorer=perturbed, temporal=False, format=getattr(vs, name)).get_frame(1))
    if name == "RGB24":
        assert np.array_equal(out[0], out[1]) and np.array_equal(out[1], out[2])
    else:
        assert (out[1] == 128).all() and (out[2] == 128).all()
    luma = vr.restore(gray, restorer=perturbed, temporal=False).get_frame(1)
    if name != "RGB24":
        assert np.abs(out[0].astype(int) - planes(luma)[0]).max() <= 1


# ------------------------------------------------------------------------------ vspipe


def vspipe(tmp_path: Path, *arguments: str) -> subprocess.CompletedProcess:
    """Run vspipe with the plugin importable and VSScript configured inside ``tmp_path``."""
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "plugins"), os.environ.get("PYTHONPATH")])),
        "PATH": os.pathsep.join([str(VSPIPE.parent), os.environ.get("PATH", "")]),
        # The pip wheel's VSScript finds Python through `vapoursynth config`'s file: keep it here.
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }
    return subprocess.run([str(VSPIPE), *arguments], capture_output=True, env=environment, timeout=300,
                          cwd=ROOT)


@pytest.fixture(scope="module")
def tiny_model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    save_generator(path, tiny_unet(0.03), TINY)
    return path


@pytest.mark.skipif(not VSPIPE.is_file(), reason="vspipe is not installed next to this Python")
def test_vspipe_renders_every_frame_of_a_script(tmp_path: Path, tiny_model_file: Path) -> None:
    script = tmp_path / "restore.vpy"
    script.write_text(
        "import vapoursynth as vs\n"
        "import vidrestore_vs as vr\n"
        "clip = vs.core.std.BlankClip(format=vs.YUV420P10, width=96, height=64, length=7, color=[300, 500, 600])\n"
        "clip = vs.core.std.AddBorders(clip.std.Crop(left=8), left=8, color=[900, 500, 500])\n"
        f"vr.restore(clip, model={str(tiny_model_file)!r}, device='cpu', batch_size=3).set_output()\n"
    )
    info = vspipe(tmp_path, "--info", str(script))
    assert info.returncode == 0, info.stderr.decode()
    assert b"Frames: 7" in info.stdout and b"YUV420P10" in info.stdout
    rendered = vspipe(tmp_path, "-c", "y4m", str(script), "-")
    assert rendered.returncode == 0, rendered.stderr.decode()
    header, _, body = rendered.stdout.partition(b"\n")
    assert b"W96 H64" in header and b"C420p10" in header
    frame_size = 96 * 64 * 3 // 2 * 2
    assert body.count(b"FRAME\n") == 7 and len(body) == 7 * (len(b"FRAME\n") + frame_size)


@pytest.mark.skipif(not VSPIPE.is_file(), reason="vspipe is not installed next to this Python")
def test_the_sample_script_runs(tmp_path: Path, tiny_model_file: Path) -> None:
    """samples/restore.vpy with a tiny model (vspipe -a model=...), first three frames only."""
    rendered = vspipe(tmp_path, "-c", "y4m", "-a", f"model={tiny_model_file}", "--end", "2",
                      "samples/restore.vpy", "-")
    assert rendered.returncode == 0, rendered.stderr.decode()
    assert b"W640 H360" in rendered.stdout.partition(b"\n")[0]
    assert rendered.stdout.count(b"FRAME\n") == 3
