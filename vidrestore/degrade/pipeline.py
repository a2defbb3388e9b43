"""Apply a sampled :class:`~vidrestore.degrade.sample.Plan` to an image or a clip.

``degrade(image, config, seed)`` is sample-then-apply in one call and returns the plan it used.
For clips, every frame gets the same optics/scaler/compression parameters (one camera, one
encoder) but fresh noise (per-frame seeds), and the H.264 operator encodes the whole clip so
frames get real inter-frame artifacts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from vidrestore.degrade import ops, video_ops
from vidrestore.degrade.sample import (
    H264,
    ChromaBleed,
    DegradeConfig,
    GaussianBlur,
    GaussianNoise,
    Jpeg,
    MotionBlur,
    Mpeg2,
    Plan,
    PoissonNoise,
    Resample,
    SaltAndPepper,
    Sharpen,
    TemporalNoise,
    sample_plan,
)

__all__ = ["apply_op", "apply_plan", "apply_plan_clip", "degrade", "degrade_clip"]

_FRAME_SEED_STRIDE = 7919  # distinct noise per frame, reproducible from the op's seed


def apply_op(image: np.ndarray, op: object, frame_index: int = 0) -> np.ndarray:
    """Apply one operator record to a float32 ``(H, W, 3)`` image in [0, 1]."""
    match op:
        case GaussianBlur(kernel_size=k, sigma=s):
            return ops.gaussian_blur(image, kernel_size=k, sigma=s)
        case MotionBlur(length=length, angle=angle):
            return ops.motion_blur(image, length=length, angle=angle)
        case Resample(scale=scale, down_mode=down, up_mode=up):
            return ops.resample(image, scale=scale, down_mode=down, up_mode=up)
        case GaussianNoise(mean=mean, sigma=sigma, gray=gray, seed=seed):
            return ops.gaussian_noise(image, mean=mean, sigma=sigma, gray=gray, seed=seed + _FRAME_SEED_STRIDE * frame_index)
        case PoissonNoise(lam=lam, gray=gray, seed=seed):
            return ops.poisson_noise(image, lam=lam, gray=gray, seed=seed + _FRAME_SEED_STRIDE * frame_index)
        case SaltAndPepper(snr=snr, seed=seed):
            return ops.salt_and_pepper(image, snr=snr, seed=seed + _FRAME_SEED_STRIDE * frame_index)
        case TemporalNoise():
            params = {k: v for k, v in dataclasses.asdict(op).items()}
            return video_ops.temporal_noise([image], **params)[0]
        case Jpeg(quality=q):
            return ops.jpeg(image, quality=q)
        case H264(crf=crf, preset=preset):
            return video_ops.h264([image], crf=crf, preset=preset)[0]
        case Sharpen(amount=amount, sigma=sigma):
            return ops.sharpen(image, amount=amount, sigma=sigma)
        case ChromaBleed(horizontal=horizontal, vertical=vertical, shift=shift):
            return ops.chroma_bleed(image, horizontal=horizontal, vertical=vertical, shift=shift)
        case Mpeg2(qscale=qscale):
            return video_ops.mpeg2([image], qscale=qscale)[0]
    raise TypeError(f"not a degradation op: {op!r}")


def apply_plan(image: np.ndarray, plan: Plan) -> np.ndarray:
    """Apply every operator of ``plan`` in order to one image."""
    out = np.ascontiguousarray(image, dtype=np.float32)
    for op in plan.ops:
        out = apply_op(out, op)
    return out


def apply_plan_clip(frames: Sequence[np.ndarray], plan: Plan) -> list[np.ndarray]:
    """Apply ``plan`` to a clip: per-frame noise, clip-level H.264/MPEG-2 and drifting noise."""
    out = [np.ascontiguousarray(f, dtype=np.float32) for f in frames]
    for op in plan.ops:
        if isinstance(op, H264):
            out = video_ops.h264(out, crf=op.crf, preset=op.preset)
        elif isinstance(op, Mpeg2):
            out = video_ops.mpeg2(out, qscale=op.qscale)
        elif isinstance(op, TemporalNoise):
            out = video_ops.temporal_noise(out, **dataclasses.asdict(op))
        else:
            out = [apply_op(frame, op, frame_index=i) for i, frame in enumerate(out)]
    return out


def degrade(image: np.ndarray, config: DegradeConfig, seed: int) -> tuple[np.ndarray, Plan]:
    """Sample a plan from ``config`` with ``seed``, apply it; returns ``(degraded, plan)``."""
    plan = sample_plan(config, seed)
    return apply_plan(image, plan), plan


def degrade_clip(frames: Sequence[np.ndarray], config: DegradeConfig, seed: int) -> tuple[list[np.ndarray], Plan]:
    """Clip version of :func:`degrade`."""
    plan = sample_plan(config, seed)
    return apply_plan_clip(frames, plan), plan
