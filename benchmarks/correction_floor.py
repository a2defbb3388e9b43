"""What the engine's correction floor does: restore_quality's crops and do_no_harm's inputs, several floors.

    .venv/bin/python benchmarks/correction_floor.py [--model PATH] [--photos DIR] [--floors 0,0.5,1,1.5,2]
        [--seed 2024] [--degrade-seed 10000]

The net runs once per input set with the floor off (``Restorer(correction_floor=0)``); every
floor is then applied to those outputs with :func:`vidrestore.engine.shrink_corrections`, the
function the engine itself calls, so each row is what ``Restorer(correction_floor=F)`` gives.
The last row is no floor but a bound on every floor: each crop's correction scaled by the factor
that is best *for that crop* (its projection on the true correction, clipped to [0, ``--oracle-cap``]),
which only the clean reference can tell — what any frame-level shrinkage of this net could reach.
Sets: ``restore_quality.py``'s damaged crops (PSNR against the clean crop, uncapped, as that
benchmark reports it) and ``do_no_harm.py``'s clean, soft, sharp + mild and soft + mild inputs
(capped at 60 dB, as there). ``--seed`` picks other crops, ``--degrade-seed`` other degradations
(crop i gets seed ``degrade_seed + i``): a floor chosen on one draw should hold on another.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import run, add_photos_option, model_label, photo_paths  # noqa: E402
from do_no_harm import mildly_damaged, soften  # noqa: E402

from vidrestore.bench.measure import scores  # noqa: E402
from vidrestore.bench.testset import IMAGE_DEGRADE_SEED, image_set  # noqa: E402
from vidrestore.engine import CORRECTION_FLOOR_POWER, Restorer, shrink_corrections  # noqa: E402

CAP_DB = 60.0


def psnrs(outputs: list[np.ndarray], references: list[np.ndarray], *, cap: float | None) -> np.ndarray:
    """Per-image PSNR of ``outputs`` (clipped to [0, 1]) against ``references``, capped at ``cap`` dB."""
    values = np.array([scores(np.clip(o, 0.0, 1.0), r)[0] for o, r in zip(outputs, references)])
    return np.minimum(values, cap) if cap else values


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", help="generator safetensors (default: the shipped model)")
    add_photos_option(parser)
    parser.add_argument("--crops", type=int, default=48)
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--floors", default="0,0.5,0.8,1,1.2,1.6,2", help="comma-separated floors in 8-bit levels")
    parser.add_argument("--power", type=float, default=CORRECTION_FLOOR_POWER,
                        help=f"the shrinkage's exponent (the engine's: {CORRECTION_FLOOR_POWER:g})")
    parser.add_argument("--seed", type=int, default=2024, help="crop selection (restore_quality's: 2024)")
    parser.add_argument("--degrade-seed", type=int, default=IMAGE_DEGRADE_SEED,
                        help=f"crop i is degraded with seed DEGRADE_SEED + i (restore_quality's: {IMAGE_DEGRADE_SEED})")
    parser.add_argument("--oracle-cap", type=float, default=8.0, help="largest scale of the per-crop best-scale bound")
    args = parser.parse_args()
    try:
        floors = [float(f) for f in args.floors.split(",")]
    except ValueError:
        parser.error(f"--floors: expected comma-separated numbers, got {args.floors!r}")
    if any(not 0.0 <= f < float("inf") for f in floors):
        parser.error("--floors: every floor must be a number >= 0")

    paths = photo_paths(args.photos)
    test_set = image_set(paths, count=args.crops, size=args.size, seed=args.seed, degrade_seed=args.degrade_seed)
    sharp = test_set.clean
    soft = [soften(c) for c in sharp]
    sets = {
        "restore_quality": (test_set.degraded, sharp),
        "clean": (sharp, sharp),
        "soft": (soft, soft),
        "sharp + mild": ([mildly_damaged(c, 7000 + i) for i, c in enumerate(sharp)], sharp),
        "soft + mild": ([mildly_damaged(c, 7000 + i) for i, c in enumerate(soft)], soft),
    }
    restorer = Restorer(args.model, tile=512, correction_floor=0)
    print(f"{len(sharp)} crops of {args.size}² from {len(paths)} photos ({args.photos or 'default'}), crop seed "
          f"{args.seed}, degradation seeds {args.degrade_seed}+i; model {model_label(args.model)}, engine "
          f"{restorer.info['device']} {restorer.info['dtype']}, shrinkage power {args.power:g}; do_no_harm sets capped at {CAP_DB:g} dB")
    print()
    header = ["floor (levels)", *sets, "below input (restore_quality)", "below input (mild, of " + str(2 * len(sharp)) + ")"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    prepared = {}
    for name, (inputs, references) in sets.items():
        stack = torch.from_numpy(np.stack(inputs)).permute(0, 3, 1, 2).contiguous()
        cap = None if name == "restore_quality" else CAP_DB
        prepared[name] = (stack, restorer.restore_tensor(stack), references, cap, psnrs(inputs, references, cap=cap))
    lines.append("| input | " + " | ".join(
        "—" if name in ("clean", "soft") else f"{prepared[name][4].mean():.2f}" for name in sets) + " | | |")

    def row(label: str, shrink) -> str:
        """A table row: ``shrink(stack, raw, references)`` → outputs, scored on every set."""
        cells, below = [label], {"restore_quality": 0, "mild": 0}
        for name, (stack, raw, references, cap, baseline) in prepared.items():
            values = psnrs(list(shrink(stack, raw, references).permute(0, 2, 3, 1).numpy()), references, cap=cap)
            cells.append(f"{values.mean():.2f}")
            if name not in ("clean", "soft"):  # the undamaged inputs are their own reference
                below["restore_quality" if name == "restore_quality" else "mild"] += int(np.sum(values < baseline))
        return "| " + " | ".join(cells + [str(below["restore_quality"]), str(below["mild"])]) + " |"

    def best_scale(stack: torch.Tensor, raw: torch.Tensor, references: list[np.ndarray]) -> torch.Tensor:
        correction = raw - stack
        wanted = torch.from_numpy(np.stack(references)).permute(0, 3, 1, 2) - stack
        scale = (correction * wanted).flatten(1).sum(1) / (correction * correction).flatten(1).sum(1).clamp(min=1e-12)
        return stack + scale.clamp(0.0, args.oracle_cap).view(-1, 1, 1, 1) * correction

    for floor in floors:
        lines.append(row(f"{floor:g}", lambda stack, raw, _, f=floor: shrink_corrections(stack, raw, f / 255.0, power=args.power)))
    lines.append(row(f"bound: best scale per crop, 0–{args.oracle_cap:g}", best_scale))
    print("\n".join(lines))


if __name__ == "__main__":
    run(main)
