"""Video degradations: codec re-encoding and temporally varying noise.

Frames are float32 ``(H, W, 3)`` in [0, 1]. Like :mod:`vidrestore.degrade.ops` these are pure
functions with explicit parameters; the encoder runs single-threaded so the same arguments give
the same bytes.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from fractions import Fraction

import av
import numpy as np

from vidrestore.degrade import ops

__all__ = ["h264", "noise_sigmas", "temporal_noise"]


_MIN_SIDE = 64  # smaller frames are padded up to this for x264 (see h264)


def h264(frames: Sequence[np.ndarray], *, crf: int, preset: str = "veryfast", keyint: int = 250) -> list[np.ndarray]:
    """Encode ``frames`` as one H.264 4:2:0 clip at ``crf`` (0–51) through PyAV, decode it back.

    A single frame gives intra-only artifacts; a clip gives the P/B-frame artifacts a real
    low-bitrate video shows. Odd sizes are edge-padded to even for 4:2:0 and cropped back, and
    frames smaller than 64×64 are edge-padded to 64: on tiny frames (e.g. 32×32) x264 in one
    process was seen to encode the same frames differently now and then (a few in 100 runs),
    which would break the seeded replay of a plan; from 64×64 up it never did in our runs.
    Frames carry explicit timestamps (x264's rate control reads them).
    """
    if not frames:
        return []
    if not 0 <= crf <= 51:
        raise ValueError(f"crf must be in [0, 51], got {crf}")
    h, w = frames[0].shape[:2]
    pad_h, pad_w = max(h % 2, _MIN_SIDE - h), max(w % 2, _MIN_SIDE - w)
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height = w + pad_w, h + pad_h
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(int(crf)), "preset": preset, "threads": "1", "g": str(keyint)}
        stream.codec_context.thread_count = 1
        stream.thread_type = "NONE"
        for index, frame in enumerate(frames):
            u8 = np.clip(frame * 255.0 + 0.5, 0, 255).astype(np.uint8)
            if pad_h or pad_w:
                u8 = np.pad(u8, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
            picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(u8), format="rgb24")
            picture.pts, picture.time_base = index, Fraction(1, 25)
            for packet in stream.encode(picture):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    buf.seek(0)
    out: list[np.ndarray] = []
    with av.open(buf, "r") as container:
        stream = container.streams.video[0]
        stream.thread_type = "NONE"  # single-threaded decode, like the encode: same bytes every time
        stream.codec_context.thread_count = 1
        for frame in container.decode(stream):
            rgb = frame.to_ndarray(format="rgb24")[:h, :w]
            out.append(rgb.astype(np.float32) * np.float32(1.0 / 255.0))
    if len(out) != len(frames):
        raise RuntimeError(f"H.264 round trip returned {len(out)} frames for {len(frames)}")
    return out


def noise_sigmas(count: int, *, sigma_min: float, sigma_max: float, period: float, phase: float) -> np.ndarray:
    """Per-frame noise level that drifts smoothly between ``sigma_min`` and ``sigma_max``.

    ``sigma[t] = lo + (hi - lo) * (1 + sin(2π t / period + phase)) / 2`` — the slow gain changes
    of a camera in changing light.
    """
    t = np.arange(count, dtype=np.float64)
    wave = 0.5 * (1.0 + np.sin(2.0 * np.pi * t / max(period, 1e-6) + phase))
    return sigma_min + (sigma_max - sigma_min) * wave


def temporal_noise(
    frames: Sequence[np.ndarray], *, sigma_min: float, sigma_max: float, period: float, phase: float, seed: int
) -> list[np.ndarray]:
    """Independent Gaussian noise per frame whose σ follows :func:`noise_sigmas`."""
    sigmas = noise_sigmas(len(frames), sigma_min=sigma_min, sigma_max=sigma_max, period=period, phase=phase)
    return [
        ops.gaussian_noise(frame, mean=0.0, sigma=float(sigma), seed=seed * 100003 + index)
        for index, (frame, sigma) in enumerate(zip(frames, sigmas))
    ]
