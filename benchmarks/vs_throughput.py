"""Throughput of the VapourSynth filter against the direct Python pipeline and MVTools.

    .venv/bin/python benchmarks/vs_throughput.py [--model PATH] [--frames 48] [--threads N]

The first ``--frames`` frames of ``samples/pan_degraded.mp4`` (640×360 YUV420P8) are decoded once
with BestSource and held in memory, so no path pays for decoding. Then, with one shared
:class:`vidrestore.Restorer` and the same temporal settings (radius 2, strength 1, batches of 4):

(a) ``vidrestore_vs.restore`` in VapourSynth, output frames consumed with ``clip.frames()``
    (YUV420P8 in and out: the filter's colour conversions are part of what it costs);
(b) ``vidrestore.video.restore_frames`` on the same frames as RGB24 (converted beforehand);
    the overhead is ``time(a) / time(b) - 1`` (target ≤ 15 %);
(c) MVTools ``Degrain2`` (blksize 16, overlap 8, thsad 400) on the same clip, a classic
    temporal denoiser for scale.

The model is ``--model``, else the shipped ``vidrestore/weights/vidrestore-unet-v1.safetensors``,
else a randomly initialised default UNet (same cost as the trained one; the output says which).
Timings are one run each on this machine; compare them only within one run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import vapoursynth as vs

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))  # until pyproject.toml lists plugins/ as a package root

import vidrestore_vs as vr  # noqa: E402
from vidrestore import Restorer  # noqa: E402
from vidrestore.io import Frame  # noqa: E402
from vidrestore.nets.unet import UNet  # noqa: E402
from vidrestore.temporal import TemporalConfig  # noqa: E402
from vidrestore.video import restore_frames  # noqa: E402
from vidrestore.weights import default_model_path  # noqa: E402

core = vs.core
SOURCE = ROOT / "samples" / "pan_degraded.mp4"
RADIUS, STRENGTH, BATCH = 2, 1.0, 4


def in_memory(clip: vs.VideoNode) -> vs.VideoNode:
    """``clip`` decoded once and held in memory: the result hands out the stored frames."""
    stored = [frame.copy() for frame in clip.frames()]
    return core.std.ModifyFrame(clip, clip.std.BlankClip(length=1, keep=True) * clip.num_frames,
                                lambda n, f: stored[n])


def consume(clip: vs.VideoNode) -> float:
    started = time.perf_counter()
    for _ in clip.frames():
        pass
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="generator safetensors (default: shipped model, else random)")
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--threads", type=int, help="VapourSynth threads (default: VapourSynth's choice)")
    args = parser.parse_args()
    if args.threads:
        core.num_threads = args.threads

    if args.model is not None:
        restorer, model_name = Restorer(args.model), str(args.model)
    elif default_model_path().is_file():
        restorer, model_name = Restorer(), f"shipped {default_model_path().name}"
    else:
        torch.manual_seed(0)
        restorer, model_name = Restorer(UNet()), "RANDOM default UNet (no shipped model found; same cost as trained)"

    source = in_memory(core.bs.VideoSource(str(SOURCE))[: args.frames])
    rgb = core.resize.Bicubic(source, format=vs.RGB24)  # reads _Matrix/_Range/_ChromaLocation from props
    frames = [Frame(index=n, pts=n, time=n / 24, rgb=np.stack([np.asarray(f[p]) for p in range(3)], axis=-1))
              for n, f in enumerate(rgb.frames())]
    count = len(frames)
    print(f"clip: {count} frames {source.width}x{source.height} {source.format.name} from {SOURCE.name}")
    print(f"model: {model_name}")
    info = restorer.info
    print(f"restorer: {info['device']} {info['dtype']}, tile {info['tile']}, batch {BATCH}; "
          f"torch threads {torch.get_num_threads()}, VapourSynth threads {core.num_threads}; "
          f"temporal radius {RADIUS}, strength {STRENGTH}")

    restorer(np.stack([to_unit(f.rgb) for f in frames[:BATCH]]))  # warm-up: first-call allocations

    restored = vr.restore(source, restorer=restorer, batch_size=BATCH, temporal_radius=RADIUS,
                          temporal_strength=STRENGTH)
    seconds_vs = consume(restored)

    temporal = TemporalConfig(radius=RADIUS, strength=STRENGTH)
    started = time.perf_counter()
    for _ in restore_frames(frames, restorer, temporal=temporal, batch_size=BATCH):
        pass
    seconds_direct = time.perf_counter() - started

    super_clip = core.mv.Super(source)
    vectors = {(backward, delta): core.mv.Analyse(super_clip, isb=backward, delta=delta, blksize=16, overlap=8)
               for backward in (True, False) for delta in (1, 2)}
    degrained = core.mv.Degrain2(source, super_clip, vectors[True, 1], vectors[False, 1], vectors[True, 2],
                                 vectors[False, 2], thsad=400)
    seconds_mv = consume(degrained)

    overhead = 100.0 * (seconds_vs / seconds_direct - 1.0)
    print(f"(a) vidrestore via VapourSynth : {count / seconds_vs:7.2f} frames/s ({seconds_vs:.1f} s)")
    print(f"(b) vidrestore direct (Python) : {count / seconds_direct:7.2f} frames/s ({seconds_direct:.1f} s)")
    print(f"    VapourSynth overhead       : {overhead:+7.1f} % (target <= 15 %)"
          f" -> {'OK' if overhead <= 15.0 else 'OVER TARGET'}")
    print(f"(c) MVTools Degrain2           : {count / seconds_mv:7.2f} frames/s ({seconds_mv:.2f} s)")


def to_unit(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float32) / 255.0


if __name__ == "__main__":
    main()
