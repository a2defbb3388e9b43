"""Per-clip PSNR of one or more models on ``vidrestore bench``'s clips.

    .venv/bin/python benchmarks/clip_compare.py [--model PATH ...] [--photos DIR]

``vidrestore bench`` prints the mean over its clips; a model that gains on two clips and loses a
lot on the third (say, over-sharpens the softly focused one) can look as good there. This prints,
for the same three 16-frame 320×180 panning clips (the same photos, degradations and seeds),
each clip's input PSNR and degradation plan, then per model the PSNR of every clip with the
temporal stage on and without it (per frame), and the means.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import run, add_photos_option, model_label, photo_paths  # noqa: E402

from vidrestore.bench.measure import scores  # noqa: E402
from vidrestore.bench.methods import restore_clip  # noqa: E402
from vidrestore.bench.testset import clip_set  # noqa: E402
from vidrestore.engine import Restorer  # noqa: E402
from vidrestore.temporal import TemporalConfig  # noqa: E402


def clip_psnr(output: list[np.ndarray], clean: list[np.ndarray]) -> float:
    return float(np.mean([scores(a, b)[0] for a, b in zip(output, clean)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", help="generator safetensors, repeatable (default: the shipped model)")
    add_photos_option(parser)
    args = parser.parse_args()
    clips = clip_set(photo_paths(args.photos), count=3, frames=16, width=320, height=180)
    for index, (clean, degraded) in enumerate(zip(clips.clean, clips.degraded)):
        print(f"clip {index} {clips.sources[index].name}: input {clip_psnr(degraded, clean):.2f} dB, "
              f"{clips.plans[index].describe()}")
    print("\n| model | temporal stage (per clip) | mean | per frame (per clip) | mean |\n|---|---|---|---|---|")
    for model in args.model or [None]:
        restorer = Restorer(model)
        temporal, per_frame = [], []
        for clean, degraded in zip(clips.clean, clips.degraded):
            temporal.append(clip_psnr(restore_clip(degraded, restorer, TemporalConfig())[0], clean))
            per_frame.append(clip_psnr(restore_clip(degraded, restorer, None)[0], clean))
        name = model_label(model, "shipped model")
        print(f"| {name} | {' / '.join(f'{v:.2f}' for v in temporal)} | {np.mean(temporal):.2f} "
              f"| {' / '.join(f'{v:.2f}' for v in per_frame)} | {np.mean(per_frame):.2f} |")


if __name__ == "__main__":
    run(main)
