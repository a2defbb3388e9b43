"""Engine speed against the machine's own matmul peak, measured in the same run.

    .venv/bin/python benchmarks/engine_speed.py [--model PATH] [--width 640 --height 360 --frames 8]

Prints the fp32 and bf16 matmul peak (2048³ products, all torch threads), then MP/s and achieved
GFLOP/s of ``Restorer`` for a few settings (precision, tiling, channels_last), and the best
setting's share of the bf16 peak. FLOPs per megapixel come from torch's FLOP counter on the
generator (2 FLOPs per multiply-add).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from vidrestore.bench.measure import flops_per_megapixel, matmul_peak
from vidrestore.device import resolve_precision
from vidrestore.engine import Restorer
from vidrestore.nets.unet import ResBlock, UNet
from vidrestore.train.config import GeneratorConfig
from vidrestore.weights import default_model_path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    model_arg = args.model or (str(default_model_path()) if default_model_path().is_file() else None)
    if model_arg is None:
        import dataclasses

        model_arg = UNet(**dataclasses.asdict(GeneratorConfig()))
        print("no shipped model: a random UNet with the default config (same cost)")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    probe = Restorer(model_arg, precision="fp32", tile=0)
    # Emulated bf16 (a CPU without it) runs ~10x slower: neither its matmul nor its settings are timed.
    native_bf16 = probe.device.type != "cpu" or resolve_precision("auto", probe.device) == torch.bfloat16
    peak32 = matmul_peak(torch.float32)
    peak16 = matmul_peak(torch.bfloat16) if native_bf16 else 0.0
    print(f"matmul peak: fp32 {peak32:.0f} GFLOP/s, bf16 {f'{peak16:.0f} GFLOP/s' if native_bf16 else 'not native here'}")
    gflop_per_mp = flops_per_megapixel(probe._model.float().to(memory_format=torch.contiguous_format)) / 1e9
    print(f"generator: {gflop_per_mp:.1f} GFLOP per megapixel")
    frames = np.random.default_rng(0).random((args.frames, args.height, args.width, 3), dtype=np.float32)
    megapixels = args.frames * args.width * args.height / 1e6
    best = (0.0, "")
    precisions = ("bf16", "fp32") if native_bf16 else ("fp32",)
    if not native_bf16:
        print("this CPU has no native bf16: fp32 only (the engine's automatic choice)")
    settings = [(p, t, b, c) for p in precisions for t, b in ((0, 4), (512, 4), (768, 2)) for c in (True, False)]
    for precision, tile, batch_size, channels_last in settings:
        restorer = Restorer(model_arg, precision=precision, tile=tile, channels_last=channels_last,
                            batch_size=batch_size)
        restorer(frames[:4])  # warm-up (oneDNN primitive creation)
        started = time.perf_counter()
        for _ in range(args.repeats):
            restorer(frames)
        rate = megapixels * args.repeats / (time.perf_counter() - started)
        gflops = rate * gflop_per_mp
        label = f"{precision}, tile {tile or 'off'}/batch {batch_size}, {'channels_last' if channels_last else 'NCHW'}"
        print(f"{label:32s} {rate:6.2f} MP/s  {rate * 1e6 / (args.width * args.height):6.2f} frames/s  "
              f"{gflops:6.0f} GFLOP/s")
        best = max(best, (gflops, label))
    if "bf16" in precisions:
        print(f"best: {best[1]}: {best[0]:.0f} GFLOP/s = {100 * best[0] / peak16:.0f} % of the bf16 matmul peak "
              f"({100 * best[0] / peak32:.0f} % of fp32's; torch's matmul is no hardware ceiling: its fp32 path "
              f"can be slower than oneDNN's convolutions)")
    else:
        print(f"best: {best[1]}: {best[0]:.0f} GFLOP/s = {100 * best[0] / peak32:.0f} % of the fp32 matmul peak")
    fold_comparison(model_arg, frames, megapixels, rounds=max(3, args.repeats + 1))


def fold_comparison(model_arg, frames: np.ndarray, megapixels: float, rounds: int) -> None:
    """The engine's default setting with each residual scale folded into its conv (what it does) and
    without (the net as trained), timed in alternation so both see the same machine load."""
    folded = Restorer(model_arg)
    fold = ResBlock.fold_scale
    ResBlock.fold_scale = lambda self: None  # type: ignore[method-assign]
    try:
        plain = Restorer(model_arg)
    finally:
        ResBlock.fold_scale = fold  # type: ignore[method-assign]
    difference = float(np.abs(folded(frames[:2]) - plain(frames[:2])).max())
    times: dict[str, list[float]] = {"folded": [], "unfolded": []}
    for _ in range(rounds):
        for name, restorer in (("folded", folded), ("unfolded", plain)):
            started = time.perf_counter()
            restorer(frames)
            times[name].append(time.perf_counter() - started)
    rates = {name: megapixels / float(np.median(spans)) for name, spans in times.items()}
    print(f"residual scales folded into the convs: {rates['folded']:.2f} MP/s, unfolded {rates['unfolded']:.2f} "
          f"(x{rates['folded'] / rates['unfolded']:.2f}, medians of {rounds} alternating runs; outputs differ by "
          f"at most {difference:.1e})")


if __name__ == "__main__":
    main()
