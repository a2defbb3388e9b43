"""Does the restorer leave good footage alone? Clean, soft and mildly degraded inputs.

    .venv/bin/python benchmarks/do_no_harm.py [--model PATH ...] [--photos DIR] [--crops 48] [--correction-floor 1]

People run a restorer over whole files, good parts included, and a lot of real video is soft
(upscaled from a smaller size, gently out of focus) without being damaged. A net trained only on
sharp targets can take that softness for blur and invent sharpness, a change viewers see at once.
On the same 384² validation crops as ``restore_quality.py`` (half-size photos, never trained on)
this prints, for each ``--model`` (default: the shipped one), the PSNR of the output against the
reference for four inputs:

- ``clean``: the sharp crop itself (reference: the input; higher = changed less);
- ``soft``: the crop halved (area) and enlarged back (bicubic), a clean but soft frame
  (reference: the input);
- ``sharp + mild`` / ``soft + mild``: the same two with mild damage, gray Gaussian noise σ 0.01 and
  JPEG quality 92 (reference: the undamaged crop; the input's own PSNR is printed, a restorer
  should not go below it).

Also the mean absolute change in 8-bit levels for the undamaged inputs, and on how many crops
each model ends below the input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import run, add_photos_option, add_correction_floor_option, model_label, photo_paths  # noqa: E402

from vidrestore.bench.measure import scores  # noqa: E402
from vidrestore.bench.testset import image_set  # noqa: E402
from vidrestore.degrade import ops  # noqa: E402
from vidrestore.engine import Restorer  # noqa: E402

MILD_NOISE_SIGMA = 0.01
MILD_JPEG_QUALITY = 92


def soften(image: np.ndarray) -> np.ndarray:
    height, width = image.shape[:2]
    small = cv2.resize(image, (width // 2, height // 2), interpolation=cv2.INTER_AREA)
    return np.clip(cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC), 0.0, 1.0)


def mildly_damaged(image: np.ndarray, seed: int) -> np.ndarray:
    noisy = ops.gaussian_noise(image, mean=0.0, sigma=MILD_NOISE_SIGMA, seed=seed, gray=True)
    return ops.jpeg(noisy, quality=MILD_JPEG_QUALITY)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", action="append", help="generator safetensors, repeatable (default: the shipped model)")
    add_photos_option(parser)
    parser.add_argument("--crops", type=int, default=48)
    parser.add_argument("--size", type=int, default=384)
    add_correction_floor_option(parser)
    args = parser.parse_args()

    paths = photo_paths(args.photos)
    sharp = image_set(paths, count=args.crops, size=args.size, seed=2024).clean
    soft = [soften(c) for c in sharp]
    cases = {
        "clean": (sharp, sharp),
        "soft": (soft, soft),
        "sharp + mild": ([mildly_damaged(c, 7000 + i) for i, c in enumerate(sharp)], sharp),
        "soft + mild": ([mildly_damaged(c, 7000 + i) for i, c in enumerate(soft)], soft),
    }
    print(f"{len(sharp)} crops of {args.size}² from {len(paths)} photos ({args.photos or 'default'}); "
          f"mild = gray noise σ {MILD_NOISE_SIGMA} + JPEG {MILD_JPEG_QUALITY}; PSNR capped at 60 dB per crop; "
          f"correction floor {args.correction_floor:g}")
    print()
    header = "| model | " + " | ".join(cases) + " | mean change clean / soft (8-bit levels) | crops below input (mild) |"
    lines = [header, "|" + "---|" * (len(cases) + 3)]
    inputs = {name: [min(scores(x, ref)[0], 60.0) for x, ref in zip(xs, refs)]
              for name, (xs, refs) in cases.items() if xs is not refs}
    lines.append("| input | " + " | ".join(
        "—" if xs is refs else f"{np.mean(inputs[name]):.2f}" for name, (xs, refs) in cases.items()) + " | 0 / 0 | |")
    for model in args.model or [None]:
        restorer = Restorer(model, tile=512, correction_floor=args.correction_floor)
        row, changes, below = [], [], 0
        for name, (xs, refs) in cases.items():
            restored = [np.clip(o, 0.0, 1.0) for o in restorer(np.stack(xs))]
            psnr = [min(scores(o, ref)[0], 60.0) for o, ref in zip(restored, refs)]
            row.append(f"{np.mean(psnr):.2f}")
            if xs is refs:
                changes.append(f"{np.mean([np.abs(o - x).mean() * 255 for o, x in zip(restored, xs)]):.2f}")
            else:
                below += int(np.sum(np.array(psnr) < np.array(inputs[name])))
        label = model_label(model)
        lines.append(f"| {label} | " + " | ".join(row) + f" | {' / '.join(changes)} | {below} of {2 * len(sharp)} |")
    print("\n".join(lines))


if __name__ == "__main__":
    run(main)
