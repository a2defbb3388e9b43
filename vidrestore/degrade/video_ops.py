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

__all__ = ["h264", "mpeg2", "noise_sigmas", "temporal_noise"]


_MIN_SIDE = 128  # smaller frames are padded up to this before encoding (see h264)


def h264(frames: Sequence[np.ndarray], *, crf: int, preset: str = "veryfast", keyint: int = 250) -> list[np.ndarray]:
    """Encode ``frames`` as one H.264 4:2:0 clip at ``crf`` (0–51) through PyAV, decode it back.

    A single frame gives intra-only artifacts; a clip gives the P/B-frame artifacts a real
    low-bitrate video shows. Odd sizes are edge-padded to even for 4:2:0 and cropped back, and
    sides under 128 px are edge-padded to 128: on small frames (64×64 and less) x264's
    lookahead encoded the same frames differently from run to run within one process (up to 87
    in 100 runs; not with ``mbtree=0`` or ``asm=0``), which would break the seeded replay of a
    plan; from 96×96 up it never did in our runs (hundreds, CRF 18–40). Frames carry explicit
    timestamps (x264's rate control reads them).
    """
    if not 0 <= crf <= 51:
        raise ValueError(f"crf must be in [0, 51], got {crf}")
    options = {"crf": str(int(crf)), "preset": preset, "threads": "1", "g": str(keyint)}
    return _round_trip(frames, "libx264", "mp4", options)


def mpeg2(frames: Sequence[np.ndarray], *, qscale: int, gop: int = 12) -> list[np.ndarray]:
    """Encode ``frames`` as one MPEG-2 clip (DVD/broadcast: 8×8 DCT blocks, mosquito noise around
    edges, I/P/B frames with a ``gop``-frame GOP and 2 B-frames) at the fixed quantiser
    ``qscale`` (2–31; DVDs run at about 3–8, starved broadcasts 10–20), decode it back. Sizes as
    :func:`h264`."""
    if not 1 <= qscale <= 31:
        raise ValueError(f"qscale must be in [1, 31], got {qscale}")
    options = {"qmin": str(int(qscale)), "qmax": str(int(qscale)), "g": str(gop), "bf": "2", "threads": "1"}
    return _round_trip(frames, "mpeg2video", "mpeg2video", options)


_RATE = 25  # frames per second of the encoded clips


def _round_trip(frames: Sequence[np.ndarray], codec: str, container_format: str, options: dict[str, str]) -> list[np.ndarray]:
    """Encode float RGB frames as one 4:2:0 clip with ``codec`` and decode it back, single-threaded
    both ways (same bytes every time); odd and tiny sizes are edge-padded and cropped back."""
    if not frames:
        return []
    h, w = frames[0].shape[:2]
    pad_h, pad_w = max(h % 2, _MIN_SIDE - h), max(w % 2, _MIN_SIDE - w)
    buf = io.BytesIO()
    with av.open(buf, "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=_RATE)
        stream.width, stream.height = w + pad_w, h + pad_h
        stream.pix_fmt = "yuv420p"
        stream.options = options
        stream.codec_context.thread_count = 1
        stream.thread_type = "NONE"
        for index, frame in enumerate(frames):
            u8 = np.clip(frame * 255.0 + 0.5, 0, 255).astype(np.uint8)
            if pad_h or pad_w:
                u8 = np.pad(u8, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
            picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(u8), format="rgb24")
            picture.pts, picture.time_base = index, Fraction(1, _RATE)
            for packet in stream.encode(picture):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    buf.seek(0)
    out: list[np.ndarray] = []
    with av.open(buf, "r") as container:
        stream = container.streams.video[0]
        stream.thread_type = "NONE"
        stream.codec_context.thread_count = 1
        for frame in container.decode(stream):
            rgb = frame.to_ndarray(format="rgb24")[:h, :w]
            out.append(rgb.astype(np.float32) * np.float32(1.0 / 255.0))
    if len(out) != len(frames):
        raise RuntimeError(f"{codec} round trip returned {len(out)} frames for {len(frames)}")
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
