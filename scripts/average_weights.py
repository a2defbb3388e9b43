"""Interpolate two generators of the same architecture: ``(1 - alpha)·A + alpha·B``, weight by
weight (a "model soup" / WiSE-FT). Two fine-tunings of one lineage that trade one quality for
another (say, sharper restoration against leaving soft footage soft) often average into a model
that keeps most of both; measure with ``benchmarks/restore_quality.py``, ``do_no_harm.py`` and
``clip_compare.py``.

A may also be a *smaller* U-Net than B (fewer residual blocks per stage or narrower levels, as
when B was trained from A grown with ``init_from``): A is first grown the same way — missing
blocks as identities, new channels that nothing reads (``UNet.load_grown``) — so the average is
taken along B's own lineage.

    python scripts/average_weights.py A.safetensors B.safetensors --alpha 0.5 -o soup.safetensors
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vidrestore.weights import load_generator, save_generator  # noqa: E402


def _label(path: Path) -> str:
    return "/".join(path.resolve().parts[-2:])


def average(a: Path, b: Path, alpha: float, out: Path) -> None:
    if not 0.0 <= alpha <= 1.0:
        raise SystemExit(f"--alpha must be in [0, 1], got {alpha}")
    first, first_meta = load_generator(a)
    second, meta = load_generator(b)
    if json.loads(first_meta["config"]) != json.loads(meta["config"]):
        grown = copy.deepcopy(second)  # B's architecture; A's weights go in, missing blocks as identities
        try:
            grown.load_grown(first.state_dict())
        except RuntimeError as exc:
            raise SystemExit(f"{a} and {b} are different networks (and A cannot grow into B: {exc}): "
                             f"{first_meta['config']} vs {meta['config']}") from exc
        first = grown
    state_a = first.state_dict()
    mixed = {k: (1 - alpha) * state_a[k] + alpha * v if v.is_floating_point() else v for k, v in second.state_dict().items()}
    second.load_state_dict(mixed)
    extra = {"step": meta.get("step", ""), "soup": f"{1 - alpha:g} × {_label(a)} (step {first_meta.get('step', '?')}) + "
             f"{alpha:g} × {_label(b)} (step {meta.get('step', '?')})"}
    save_generator(out, second, json.loads(meta["config"]), extra)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    parser.add_argument("--alpha", type=float, default=0.5, help="weight of B (default 0.5)")
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args()
    average(args.a, args.b, args.alpha, args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
