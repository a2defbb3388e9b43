"""Run the public benchmark: build the test set, run every method, collect every figure.

:func:`run_bench` returns a plain JSON-able dict; :mod:`vidrestore.bench.report` turns it into
the markdown report, the plots and the JSON file. Every speed is measured in this run on this
machine, next to the others: only the ratios travel between machines.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import platform
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from vidrestore.bench.measure import flops_per_megapixel, matmul_peak, scores, timed
from vidrestore.bench.methods import VIDRESTORE, Method, MissingDependency, bench_methods
from vidrestore.bench.testset import ClipSet, ImageSet, clip_set, default_photos, image_set, photo_paths
from vidrestore.degrade import Plan
from vidrestore.engine import Restorer
from vidrestore.metrics import warping_errors
from vidrestore.weights import load_generator

__all__ = ["BenchConfig", "run_bench"]

log = logging.getLogger(__name__)

Row = dict[str, Any]

PHOTOS_HINT = ("pass --photos DIR with a folder of clean photos or videos (the default is the demo corpus's curated validation "
               "split: `vidrestore corpus data/corpus && vidrestore curate data/corpus/val data/curated/val --min-class poor`)")


@dataclass(frozen=True)
class BenchConfig:
    """What ``vidrestore bench`` measures.

    The defaults regenerate ``docs/bench/`` on a 2-core CPU in well under 20 minutes: BM3D (about
    0.014 MP/s) and Real-ESRGAN on the CPU dominate, so the crops and clips are small and few.
    :meth:`quick` is a smoke configuration that runs in seconds.

    Attributes:
        photos: folder of clean photos and videos (recursive); default data/curated/val, else
            data/corpus/val.
        crops, crop_size: image test set, ``crops`` crops of ``crop_size``² from half-size photos
            (and from videos' middle frames as they are).
        clips, clip_frames, clip_width, clip_height: video test set, each video's middle frames
            (fitted to the size), then slow pans over the photos (even sizes: MVTools runs on YUV 4:2:0).
        seed: crop positions.
        matmul_size: side of the square matrices timed for the machine's matmul peak.
        model: generator weights; None for the shipped default.
        engine: keyword options for :class:`~vidrestore.engine.Restorer` (device, precision, tile...).
    """

    photos: str = field(default_factory=lambda: str(default_photos()))
    crops: int = 16
    crop_size: int = 256
    clips: int = 3
    clip_frames: int = 16
    clip_width: int = 320
    clip_height: int = 180
    seed: int = 2024
    matmul_size: int = 2048
    model: str | None = None
    engine: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("crops", "crop_size", "clips", "matmul_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"bench: {name} must be >= 1, got {getattr(self, name)}")
        if self.clip_frames < 3:
            raise ValueError(f"bench: clips need at least 3 frames (warping error, Degrain2), got {self.clip_frames}")
        if min(self.clip_width, self.clip_height) < 32 or self.clip_width % 2 or self.clip_height % 2:
            raise ValueError(
                f"bench: clip size must be even and at least 32, got {self.clip_width}×{self.clip_height}"
            )

    @classmethod
    def quick(cls, **changes: Any) -> BenchConfig:
        """A seconds-long smoke run: 2 crops of 64², one 3-frame 64×48 clip, small matmuls (BM3D's
        fixed cost per call, about a second, dominates it)."""
        smoke = dict(crops=2, crop_size=64, clips=1, clip_frames=3, clip_width=64, clip_height=48, matmul_size=256)
        return cls(**{**smoke, **changes})


# --------------------------------------------------------------------------------------------
# One row per method
# --------------------------------------------------------------------------------------------


def _missing(methods: list[Method]) -> dict[str, str]:
    """Method name → why it cannot run ("not installed (...)"), for methods missing a package."""
    missing = {}
    for method in methods:
        try:
            method.check()
        except MissingDependency as exc:
            log.warning("%s: %s", method.name, exc)
            missing[method.name] = str(exc)
    return missing


def _attempt(method: Method, measure: Callable[[], Row]) -> Row:
    """``{"status": "ok", **measure()}``, or ``{"status": "failed (...)"}``.

    A method that raises is logged with its traceback and reported as failed rather than
    stopping the run: one broken baseline should not cost the other twenty minutes of figures.
    """
    try:
        return {"status": "ok", **measure()}
    except Exception as exc:  # noqa: BLE001 — reported in the row, logged with the traceback
        log.exception("%s failed", method.name)
        return {"status": f"failed ({type(exc).__name__}: {exc})"}


def _mean_scores(restored: list[np.ndarray], clean: list[np.ndarray]) -> tuple[float, float]:
    pairs = [scores(r, c) for r, c in zip(restored, clean, strict=True)]
    return float(np.mean([p[0] for p in pairs])), float(np.mean([p[1] for p in pairs]))


def _speed(method: Method, seconds: float, megapixels: float, frames: int) -> Row:
    """Seconds, MP/s and frames (or images) per second; None for a method that is not timed."""
    if not method.timed:
        return {"seconds": None, "mp_per_s": None, "frames_per_s": None}
    return {"seconds": seconds, "mp_per_s": megapixels / seconds, "frames_per_s": frames / seconds}


def image_row(method: Method, images: ImageSet) -> Row:
    """PSNR/SSIM (means over crops) and speed of ``method`` on the image set."""
    restore = method.images
    if restore is None:
        raise ValueError(f"{method.name} is not run on images")

    def measure() -> Row:
        if method.warm_up:
            restore(images.degraded[:1])
        restored, seconds = timed(restore, images.degraded)
        psnr, ssim = _mean_scores(restored, images.clean)
        log.info("images: %s: %.2f dB, SSIM %.4f, %.1f s", method.name, psnr, ssim, seconds)
        return {"psnr": psnr, "ssim": ssim, **_speed(method, seconds, images.megapixels, len(images.clean))}

    return _attempt(method, measure)


def clip_row(method: Method, clips: ClipSet) -> Row:
    """PSNR/SSIM (means over frames, then clips), warping error (×10⁻³, against the clean clip's
    motion) and speed of ``method`` on the clip set."""
    restore = method.clip
    if restore is None:
        raise ValueError(f"{method.name} is not run on clips")

    def measure() -> Row:
        if method.warm_up:
            restore(clips.degraded[0][:1])
        psnrs, ssims, warps, seconds = [], [], [], 0.0
        for clean, degraded in zip(clips.clean, clips.degraded, strict=True):
            restored, spent = timed(restore, degraded)
            seconds += spent
            psnr, ssim = _mean_scores(restored, clean)
            psnrs.append(psnr)
            ssims.append(ssim)
            warps.append(float(np.mean(warping_errors(restored, clean))) * 1e3)
        log.info("clips: %s: %.2f dB, warping error %.3f, %.1f s", method.name, np.mean(psnrs), np.mean(warps), seconds)
        return {"psnr": float(np.mean(psnrs)), "ssim": float(np.mean(ssims)), "warping_error": float(np.mean(warps)),
                **_speed(method, seconds, clips.megapixels, clips.frames)}

    return _attempt(method, measure)


# --------------------------------------------------------------------------------------------
# Engine efficiency and the machine
# --------------------------------------------------------------------------------------------


def engine_efficiency(model: str | None, device: torch.device, megapixels_per_s: float | None, matmul_size: int) -> Row:
    """The engine's effective GFLOP/s (its measured MP/s × the generator's FLOPs per MP) against
    the fp32 and bf16 matmul peak of ``device``, measured now."""
    network, _ = load_generator(model)
    gflop_per_mp = flops_per_megapixel(network.float()) / 1e9
    peaks = {name: matmul_peak(dtype, matmul_size, device=device) for name, dtype in
             (("fp32", torch.float32), ("bf16", torch.bfloat16))}
    achieved = megapixels_per_s * gflop_per_mp if megapixels_per_s else None
    log.info("engine: %.1f GFLOP/MP; matmul peak fp32 %.0f, bf16 %.0f GFLOP/s",
             gflop_per_mp, peaks["fp32"], peaks["bf16"])
    return {
        "gflop_per_megapixel": gflop_per_mp,
        "mp_per_s": megapixels_per_s,
        "gflops": achieved,
        "peak_gflops": peaks,
        "percent_of_peak": {name: 100 * achieved / peak if achieved else None for name, peak in peaks.items()},
        "matmul_size": matmul_size,
    }


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(restorer: Restorer) -> Row:
    """Where and when the figures were measured: CPU, threads, device, versions, UTC date."""
    from vidrestore import __version__

    info = restorer.info
    device = info["device"]
    if restorer.device.type == "cuda":
        device += f" ({torch.cuda.get_device_name(restorer.device)})"
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "opencv_threads": cv2.getNumThreads(),
        "device": device,
        "dtype": info["dtype"],
        "tile": info["tile"],
        "batch_size": info["batch_size"],
        "correction_floor": info["correction_floor"],
        "model": info["model"].get("source"),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "vidrestore": __version__,
    }


def _operator_counts(plans: list[Plan]) -> dict[str, int]:
    """How many samples each degradation operator appears in (what the set asks of the methods)."""
    return dict(sorted(Counter(name for plan in plans for name in {op.name for op in plan.ops}).items()))


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


def run_bench(config: BenchConfig) -> dict[str, Any]:
    """Measure every method on images and clips, and the engine's efficiency.

    Returns ``{"machine", "config", "images", "clips", "engine", "methods"}`` (``methods``: name →
    ``{"about", "warm_up"}``, how it is run); ``images``/``clips`` hold the
    test set's description and ``rows``: method name → ``{"status": "ok" | reason, "psnr",
    "ssim", ["warping_error"], "seconds", "mp_per_s", "frames_per_s"}``.

    Raises:
        FileNotFoundError: ``config.photos`` is not a folder.
        ValueError: it holds no usable photos.
    """
    if not Path(config.photos).is_dir():
        raise FileNotFoundError(f"bench: {config.photos}: no such folder; {PHOTOS_HINT}")
    paths = photo_paths(config.photos)
    if not paths:
        raise ValueError(f"bench: no images or videos in {config.photos}; {PHOTOS_HINT}")
    restorer = Restorer(config.model, **config.engine)
    methods = bench_methods(restorer)
    images = image_set(paths, count=config.crops, size=config.crop_size, seed=config.seed)
    clips = clip_set(paths, count=config.clips, frames=config.clip_frames, width=config.clip_width,
                     height=config.clip_height)
    log.info("test set: %d crops of %d², %d clips of %d frames", len(images.clean), config.crop_size,
             len(clips.clean), config.clip_frames)
    missing = _missing(methods)
    image_rows: dict[str, Row] = {
        m.name: {"status": missing[m.name]} if m.name in missing else image_row(m, images)
        for m in methods if m.images is not None
    }
    clip_rows: dict[str, Row] = {
        m.name: {"status": missing[m.name]} if m.name in missing else clip_row(m, clips)
        for m in methods if m.clip is not None
    }
    return {
        "machine": machine_info(restorer),
        "config": dataclasses.asdict(config),
        "images": {"count": len(images.clean), "size": config.crop_size, "photos": len(paths),
                   "degradations": _operator_counts(images.plans), "rows": image_rows},
        "clips": {"count": len(clips.clean), "frames": config.clip_frames, "width": config.clip_width,
                  "height": config.clip_height, "sources": [p.name for p in clips.sources],
                  "degradations": _operator_counts(clips.plans), "rows": clip_rows},
        "engine": engine_efficiency(config.model, restorer.device, image_rows[VIDRESTORE].get("mp_per_s"),
                                    config.matmul_size),
        "methods": {m.name: {"about": m.about, "warm_up": m.warm_up} for m in methods},
    }
