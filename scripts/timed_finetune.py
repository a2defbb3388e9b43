"""Train the generator for a fixed wall-clock budget (a rented GPU for a few minutes, a CPU
overnight) with the learning-rate schedule still ending on time.

``vidrestore train`` plans its cosine schedule in steps; how many steps fit a budget depends on
the machine. This driver runs a short probe (``stop_after``), reads the step rate from the run's
``metrics.jsonl``, then resumes the same run with the step counts that fill the rest of the
budget: most of it as L1 steps, then discriminator pretraining and a joint L1 + GAN phase (the
adversarial share, ``--adversarial``). A watchdog interrupts the run (SIGINT: it saves and
exits) if the estimate was too hopeful. Finally it copies the weights as float16 with the
run's config and metrics into ``--export`` (optional).

    python scripts/timed_finetune.py --budget-s 600 --out runs/v8 --export out/v8 -- \\
        --train-data data/curated/train --val-data data/curated/val \\
        --set init_from=vidrestore/weights/vidrestore-unet-v1.safetensors ...

Everything after ``--`` goes to ``vidrestore train`` for the probe; the driver adds
``--out``, ``stop_after``, ``val_every`` and the phase lengths itself.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _train(args: list[str], log: Path, deadline: float | None) -> int:
    command = [sys.executable, "-m", "vidrestore.cli", "train", *args]
    print("+", " ".join(command), flush=True)
    with open(log, "a") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT)
        while process.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                print("deadline: interrupting the run (it saves and exits)", flush=True)
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(timeout=90)
                except subprocess.TimeoutExpired:
                    process.kill()
                break
            time.sleep(1)
        return process.wait()


def _records(out: Path) -> list[dict]:
    path = out / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def _rate(out: Path) -> float:
    """Steps per second between the probe's two validation points (start-up excluded)."""
    timed = [r for r in _records(out) if "elapsed_s" in r]
    if len(timed) < 2:
        raise SystemExit(f"{out}: the probe left fewer than two timed validation records")
    a, b = timed[-2], timed[-1]
    return (b["step"] - a["step"]) / max(b["elapsed_s"] - a["elapsed_s"], 1e-6)


def plan(rate: float, left_s: float, *, probe: int, adversarial: float, d_pretrain: int, safety: float,
         joint_cost: float = 1.5) -> tuple[int, int, int]:
    """``(more, g_total, joint)``: the L1-step equivalents that fit ``left_s`` at ``rate`` (times
    ``safety``), the L1 phase's end step and the joint phase's length. The discriminator phases
    take ``adversarial`` of that time, a D or joint step costing ``joint_cost`` L1 steps (they add
    discriminator passes; on an H200, 256² crops × 32: ~24 against ~30 steps/s). With too little
    time for the discriminator's pretraining and some joint steps, all of it goes to L1 steps."""
    more = max(int(rate * left_s * safety), 0)
    adversarial_steps = int(more * adversarial / joint_cost)
    joint = max(adversarial_steps - d_pretrain, 0)
    if joint == 0:
        return more, probe + more, 0
    return more, probe + more - int(more * adversarial), joint


def export(out: Path, dest: Path) -> None:
    import torch

    from vidrestore.weights import load_generator, save_generator

    dest.mkdir(parents=True, exist_ok=True)
    config = json.loads((out / "config.json").read_text())
    for name in ("best.safetensors", "last.safetensors", "pretrain.safetensors"):
        if (out / name).is_file():
            model, metadata = load_generator(out / name)
            extra = {k: v for k, v in metadata.items() if k not in ("arch", "config")}
            save_generator(dest / name, model, config["generator"], extra, dtype=torch.float16)
    for name in ("config.json", "metrics.jsonl", "train.log"):
        if (out / name).is_file():
            shutil.copy2(out / name, dest / name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget-s", type=float, required=True, help="wall-clock seconds for all of it")
    parser.add_argument("--out", type=Path, required=True, help="run folder")
    parser.add_argument("--export", type=Path, help="copy float16 weights, config and metrics here")
    parser.add_argument("--probe-steps", type=int, default=600)
    parser.add_argument("--adversarial", type=float, default=0.15, help="share of the steps in the joint phase")
    parser.add_argument("--d-pretrain", type=int, default=200)
    parser.add_argument("--reserve-s", type=float, default=45, help="kept for the last save and the export")
    parser.add_argument("--safety", type=float, default=0.85,
                        help="fraction of the estimated steps planned (the probe's rate runs ~15 %% high)")
    parser.add_argument("--joint-cost", type=float, default=1.5, help="a D or joint step's time in L1 steps")
    parser.add_argument("--max-steps", type=int, default=0, help="plan at most this many steps in all (0: no cap)")
    parser.add_argument("train_args", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    if args.budget_s <= args.reserve_s:
        parser.error(f"--budget-s {args.budget_s:g} leaves nothing after --reserve-s {args.reserve_s:g}")
    started = time.monotonic()
    deadline = started + args.budget_s - args.reserve_s
    train_args = [a for a in args.train_args if a != "--"]
    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / "train.log"

    probe = args.probe_steps
    half = probe // 2
    # The probe plans a long L1 phase (so its schedule is nearly the final one) and stops early.
    code = _train([*train_args, "--out", str(args.out), "--steps", "1000",
                   "--set", f"g_pretrain_steps={probe * 40}", "--set", f"d_pretrain_steps={args.d_pretrain}",
                   "--set", f"stop_after={probe}", "--set", f"val_every={half}"], log, deadline)
    if code not in (0, 130):
        raise SystemExit(f"probe failed (exit {code}); see {log}")
    rate = _rate(args.out)
    probe_wall = time.monotonic() - started
    restart = max(probe_wall - probe / rate, 0.0)  # start-up, validation set, first batches
    left = deadline - time.monotonic() - restart
    if args.max_steps:  # the same plan as for the time in which ``max_steps`` would fit
        left = min(left, max(args.max_steps - probe, 0) / (rate * args.safety))
    more, g_total, joint = plan(rate, left, probe=probe, adversarial=args.adversarial,
                                d_pretrain=args.d_pretrain, safety=args.safety, joint_cost=args.joint_cost)
    print(f"probe: {rate:.2f} steps/s, start-up {restart:.0f} s; planning {g_total} L1 steps, "
          f"{args.d_pretrain if joint else 0} D-pretrain, {joint} joint steps", flush=True)
    if more > 0:
        val_every = max(250, (more // 12) // 50 * 50)
        # With no joint phase the run ends with its L1 phase (one final joint step, no D pretraining).
        code = _train(["--out", str(args.out), "--resume", "--steps", str(max(joint, 1)),
                       "--set", f"g_pretrain_steps={g_total}",
                       "--set", f"d_pretrain_steps={args.d_pretrain if joint else 0}",
                       "--set", "stop_after=0", "--set", f"val_every={val_every}"], log, deadline)
        print(f"run ended with exit {code} after {time.monotonic() - started:.0f} s", flush=True)
    if args.export:
        export(args.out, args.export)
        print(f"exported to {args.export}", flush=True)


if __name__ == "__main__":
    main()
