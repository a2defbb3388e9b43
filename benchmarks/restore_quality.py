"""Image restoration quality and speed on the demo corpus's validation split.

    .venv/bin/python benchmarks/restore_quality.py [--model PATH] [--photos DIR] [--crops 48] [--no-bm3d] [--per-crop]
        [--correction-floor 1] [--degrade mpeg2.probability=0.5 ...]

Takes ``--crops`` 384×384 crops spread evenly over the validation photos (half size; default
the curated val split), degrades each with the default
degradation config (fixed seeds; ``--degrade KEY=VALUE`` changes it, e.g. to switch on the opt-in
MPEG-2, over-sharpening and chroma-bleed operators of old and broadcast video), and restores them with: nothing (the degraded input), OpenCV
non-local means, BM3D, and vidrestore. Prints mean PSNR/SSIM per method, vidrestore's engine
throughput (MP/s) next to BM3D's in the same run, and writes ``docs/restore_quality.md`` and a
side-by-side picture ``docs/restore_side_by_side.png``.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import run, add_photos_option, add_correction_floor_option, ROOT, photo_paths  # noqa: E402

from vidrestore.bench.measure import scores, timed  # noqa: E402
from vidrestore.bench.methods import bm3d_denoise, nlm, pooled, to_u8  # noqa: E402
from vidrestore.bench.testset import image_set  # noqa: E402
from vidrestore.degrade import DegradeConfig  # noqa: E402
from vidrestore.engine import Restorer  # noqa: E402
from vidrestore.train.config import apply_overrides  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", help="generator safetensors (default: the shipped model)")
    add_photos_option(parser)
    parser.add_argument("--crops", type=int, default=48, help="crops in all, spread over the photos (BM3D: ~11 s each)")
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--no-bm3d", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "docs"))
    parser.add_argument("--per-crop", action="store_true", help="also list every crop: input and vidrestore PSNR, degradations")
    add_correction_floor_option(parser)
    parser.add_argument("--degrade", action="append", default=[], metavar="KEY=VALUE",
                        help="override the degradation config (repeatable), e.g. mpeg2.probability=0.5")
    args = parser.parse_args()
    try:
        config = apply_overrides(DegradeConfig(), args.degrade)
    except ValueError as exc:
        parser.error(f"--degrade: {exc}")
    if not args.no_bm3d and importlib.util.find_spec("bm3d") is None:
        # Found out before the crops are made, not with a traceback after NLM has run.
        parser.error("BM3D, a baseline of this benchmark, is not installed: run scripts/bootstrap.sh bench "
                     "(or pass --no-bm3d)")

    paths = photo_paths(args.photos)
    test_set = image_set(paths, count=args.crops, size=args.size, seed=2024, config=config)
    clean, degraded, plans = test_set.clean, test_set.degraded, test_set.plans
    restorer = Restorer(args.model, tile=512, correction_floor=args.correction_floor)
    methods = {"degraded input": lambda x: x, "OpenCV NLM": nlm}
    if not args.no_bm3d:
        methods["BM3D"] = bm3d_denoise
    results: dict[str, list[tuple[float, float]]] = {}
    seconds: dict[str, float] = {}
    outputs: dict[str, list[np.ndarray]] = {}
    for name, fn in methods.items():
        if name == "OpenCV NLM":
            # OpenCV's NLM runs on one core: crops side by side get it the cores the others use.
            started = time.perf_counter()
            outs = pooled(fn, degraded)
            total = time.perf_counter() - started
        else:
            outs, total = [], 0.0
            for image in degraded:
                out, spent = timed(fn, image)
                outs.append(out)
                total += spent
        outputs[name], seconds[name] = outs, total
        results[name] = [scores(o, c) for o, c in zip(outs, clean)]
    # vidrestore: the engine on the whole set as one batch stream (warm-up first).
    restorer(np.stack(degraded[:2]))
    batch = np.stack(degraded)
    started = time.perf_counter()
    restored = restorer(batch)
    seconds["vidrestore"] = time.perf_counter() - started
    outputs["vidrestore"] = list(restored)
    results["vidrestore"] = [scores(o, c) for o, c in zip(restored, clean)]

    megapixels = len(clean) * args.size * args.size / 1e6
    lines = [
        f"{len(clean)} crops of {args.size}² from {len(paths)} validation photos ({args.photos or 'default'}), "
        f"{'degradations ' + ', '.join(args.degrade) if args.degrade else 'default degradations'} "
        f"(seeds 10000+i); torch threads {torch.get_num_threads()}, engine {restorer.info['device']} "
        f"{restorer.info['dtype']}, correction floor {args.correction_floor:g}.",
        "",
        "| method | PSNR (dB) | SSIM | MP/s |",
        "|---|---|---|---|",
    ]
    for name, values in results.items():
        mean_psnr = float(np.mean([v[0] for v in values]))
        mean_ssim = float(np.mean([v[1] for v in values]))
        speed = "" if name == "degraded input" else f"{megapixels / seconds[name]:.3f}"
        lines.append(f"| {name} | {mean_psnr:.2f} | {mean_ssim:.4f} | {speed} |")
    base = float(np.mean([v[0] for v in results["degraded input"]]))
    ours = float(np.mean([v[0] for v in results["vidrestore"]]))
    classic = max(float(np.mean([v[0] for v in results[n]])) for n in results if n not in ("degraded input", "vidrestore"))
    lines += ["", f"vidrestore − degraded input: {ours - base:+.3f} dB; vidrestore − best classic: {ours - classic:+.3f} dB",
              "", "Conventions: PSNR over R, G and B together (not luma), SSIM per channel (11×11 Gaussian window, "
              "σ 1.5, valid region) then averaged; both on [0, 1] floats and averaged over crops (mean of per-crop dB). "
              "Baselines get a noise level estimated from their input (Immerkær: on luma for NLM's h, per channel "
              "for BM3D), never the true one."]
    # Where the gain comes from: mean PSNR gain of vidrestore over the input, by operator present.
    gains = np.array([r[0] - i[0] for r, i in zip(results["vidrestore"], results["degraded input"])])
    by_op: dict[str, list[float]] = {}
    for gain, plan in zip(gains, plans):
        for op in {o.name for o in plan.ops}:
            by_op.setdefault(op, []).append(float(gain))
    lines += ["", "vidrestore gain over the input by degradation present (dB, crops): " + ", ".join(
        f"{op} {np.mean(v):+.2f} ({len(v)})" for op, v in sorted(by_op.items()))]
    worse = gains < 0
    lines.append(f"vidrestore is below the input on {int(worse.sum())} of {len(gains)} crops"
                 + (f" (worst {gains.min():+.2f} dB, mean of those {gains[worse].mean():+.2f} dB)" if worse.any() else ""))
    if "BM3D" in seconds:
        lines.append(f"BM3D took {seconds['BM3D']:.1f} s for what vidrestore did in {seconds['vidrestore']:.2f} s "
                     f"({seconds['BM3D'] / seconds['vidrestore']:.0f}× faster)")
    text = "\n".join(lines)
    print(text)
    if args.per_crop:
        print("\ncrop | input dB | vidrestore dB | gain | degradations")
        for i, (plan, r, d) in enumerate(zip(plans, results["vidrestore"], results["degraded input"])):
            print(f"{i:4d} | {d[0]:8.2f} | {r[0]:13.2f} | {r[0] - d[0]:+6.2f} | {plan.describe()}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "restore_quality.md").write_text(
        "# Image restoration on the validation split\n\nRegenerate: `.venv/bin/python benchmarks/restore_quality.py`\n\n"
        + text + "\n\n![side by side](restore_side_by_side.png)\n\nColumns: degraded, "
        + ", ".join(n for n in outputs if n != "degraded input") + ", clean.\n"
    )
    rows = []
    for index in range(0, len(clean), max(1, len(clean) // 4))[:4]:
        tiles = [outputs["degraded input"][index]] + [outputs[n][index] for n in outputs if n != "degraded input"] + [clean[index]]
        rows.append(np.concatenate([t[:192, :192] for t in tiles], axis=1))
    cv2.imwrite(str(out / "restore_side_by_side.png"), cv2.cvtColor(to_u8(np.concatenate(rows, axis=0)), cv2.COLOR_RGB2BGR))


if __name__ == "__main__":
    run(main)
