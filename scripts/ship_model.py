"""Ship a training run's best generator as the package's default model, with its model card.

    python scripts/ship_model.py runs/v1 [--notes docs/restore_quality.md ...]

Copies ``RUN/best.safetensors`` (EMA weights at the best validation PSNR) into
``vidrestore/weights/vidrestore-unet-v1.safetensors`` as float16 (half the size; loading converts
back to float32) and writes ``vidrestore-unet-v1.md`` from the run's config, validation curve and
wall time. Extra markdown files given with ``--notes`` are appended (benchmark tables).
"""

from __future__ import annotations

import argparse
import json
import platform
from dataclasses import asdict
from pathlib import Path

import torch

from vidrestore.degrade import mild_config
from vidrestore.nets.unet import UNet
from vidrestore.weights import DEFAULT_MODEL, default_model_path, load_generator, save_generator

FAILURES = """\
## Known failure cases
- Trained on 156 curated stills (Debian wallpapers, GCompris's photos of animals, monuments and
  underwater scenes, scikit-image's samples; a few cartoons): faces, text and film grain are
  under-represented; it may smooth grain that is wanted.
- Mild degradations on fine texture (pebbles, foliage, fur with noise σ ≈ 0.01 or JPEG ≥ 85) can
  come out smoother than they went in: the net cannot always tell fine texture from noise
  (`benchmarks/do_no_harm.py`: sharp crops with gray noise σ 0.01 + JPEG 92 end about 0.4 dB
  above the input on average, but below it on about a third of the mildly damaged crops).
  The net alone changes clean input by about 1.2 8-bit levels on average (≈ 44.6 dB); the
  engine's correction floor (`Restorer(correction_floor=1)`, the default) passes most clean frames
  through (≈ 52 dB), but not textured ones, whose correction is larger than the floor: it can
  smooth or alter fine source grain (a grass crop with faint gray noise ends 4 dB below its input
  in `benchmarks/restore_quality.py --per-crop`). The same floor trims timid corrections: a
  mildly blurred frame the net corrects by only about a level gets less of that correction
  (≈ 0.1 dB on soft, heavily compressed video in `benchmarks/video_flicker.py`;
  `correction_floor=0` turns the floor off).
- Soft footage: trained with enlarged and defocused clean targets so that soft is not always
  taken for blurred, but a soft picture can still gain edges it never had (soft clean crops
  change by about 0.9 levels with the correction floor, ≈ 47.7 dB). Soft footage with faint noise and compression is the
  hardest case: it looks like the resample degradation the net is trained to undo, and comes
  out about level with its input; the GPU-trained runs in its lineage sharpen it more (below
  the input), which is why it ships averaged with the previous default — see the history.
- Heavy degradations outside the training ranges (JPEG quality < 50, noise σ > 0.12, blur
  kernels > 13 px, downscale > 4×) are only partly restored.
- It removes compression artifacts it has seen (JPEG, H.264 intra/inter at CRF 18–38). MPEG-2
  blocking and mosquito noise, over-sharpening halos and VHS chroma bleed now exist as opt-in
  degradations (`degrade.mpeg2`, `degrade.sharpen`, `degrade.chroma_bleed`) but this model was
  not trained on them (with them switched on in `benchmarks/restore_quality.py --degrade ...` it
  still gains about 2 dB over the input; a CPU fine-tune that saw them gained 0.15 dB more there
  but lost 0.14 dB on the default degradations, so it is not shipped); interlacing is not
  modelled.
- Single-frame network: temporal consistency comes from the separate fusion stage
  (`vidrestore.temporal`); with it off, restored video flickers slightly.
"""


def macs_per_megapixel(network: torch.nn.Module, size: int = 256) -> float:
    """Multiply-accumulates per megapixel of one forward pass (torch's FLOP counter / 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        network(torch.zeros(1, 3, size, size))
    return counter.get_total_flops() / 2 / (size * size / 1e6)


PHASES = {"ema_l1": "L1 warm-up", "ema": "joint L1 + GAN"}


def run_progress(run: Path, records: list[dict]) -> tuple[int, float]:
    """(steps, wall seconds) of RUN: from its checkpoint, else (a run brought back from a lent GPU
    without its optimizer state) from its last validation record."""
    if (run / "checkpoint.pt").exists():
        checkpoint = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True)
        return int(checkpoint["step"]), float(checkpoint["elapsed"])
    last = [r for r in records if "elapsed_s" in r][-1]
    return int(last["step"]), float(last["elapsed_s"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run", type=Path)
    parser.add_argument("--weights", default="best.safetensors", help="file in RUN to ship (default best)")
    parser.add_argument("--notes", nargs="*", default=[])
    parser.add_argument("--data-note", help="a word on the data paths for the card (e.g. a compact copy)")
    parser.add_argument("--hardware", help="what the run trained on, for the card (default: this machine's CPU; "
                        "say which GPU for a run brought back from one)")
    args = parser.parse_args()
    config = json.loads((args.run / "config.json").read_text())
    model, metadata = load_generator(args.run / args.weights)
    target = default_model_path()
    generator_config = config["generator"]
    save_generator(target, model, generator_config, {k: v for k, v in metadata.items() if k not in ("arch", "config")},
                   dtype=torch.float16)
    records = [json.loads(line) for line in open(args.run / "metrics.jsonl")]
    curve = [r for r in records if r["kind"] in ("ema_l1", "ema")]
    baseline = next(r for r in records if r["kind"] == "degraded_input")
    total_steps, elapsed = run_progress(args.run, records)
    shipped_step = int(metadata.get("step", total_steps))
    network = UNet(**{k: tuple(v) if isinstance(v, list) else v for k, v in generator_config.items()})
    params = sum(p.numel() for p in network.parameters())
    gmac = macs_per_megapixel(network) / 1e9
    on_gpu = config.get("device") == "cuda"
    hardware = args.hardware or (
        "a CUDA GPU" if on_gpu else f"{platform.processor() or platform.machine()} "
        f"({config.get('threads') or torch.get_num_threads()} thread(s), CPU only, sharing the CPU with development work)")
    lines = [
        f"# {DEFAULT_MODEL}",
        "",
        "The default generator of vidrestore: a U-Net (`vidrestore.nets.unet.UNet`) that restores blur, noise, "
        "compression artifacts and low-resolution softness, trained with L1 + conditional PatchGAN loss.",
        "",
        "## Network",
        f"- config: `{json.dumps(generator_config)}`",
        f"- {params / 1e6:.2f} M parameters; ~{gmac:.0f} GMAC per megapixel (measured with torch's FLOP counter)",
        "- stored as float16 safetensors (no pickle); loads as float32",
        "",
        "## Training",
        f"- data: `{config['train_data']}` (validation: `{config['val_data']}`) — the `vidrestore corpus` demo corpus "
        "(Debian packages: the KDE/MATE wallpapers, GCompris's photos, scikit-image's samples), curated with "
        f"`vidrestore curate`{'; ' + args.data_note if args.data_note else ''}; {config['patch_size']}² crops at scales {config['scale_range']}"
        + (" (above 1: a smaller region enlarged bicubically, a clean but soft target)" if config["scale_range"][1] > 1 else "")
        + ", flips/rotations",
        "- degradations: `DegradeConfig()` defaults (blur, motion blur, resample, noise, JPEG, H.264), on the fly"
        + (f"; {config['mild_fraction']:.0%} of the crops from `mild_config()`"
           + ("" if config["mild"] == json.loads(json.dumps(asdict(mild_config()))) else " (overridden: see the run's config.json)")
           + " instead (the same operators at their gentle end: nearly good footage)" if config.get("mild_fraction") else ""),
        *([f"- {config['defocus_fraction']:.0%} of the clean targets themselves blurred (Gaussian σ "
            f"{config['defocus_sigma'][0]}–{config['defocus_sigma'][1]}: soft and correct, like a shallow depth of field)"]
          if config.get("defocus_fraction") else []),
        *([f"- {config['clean_fraction']:.0%} of the crops left undegraded (input = target: good footage is left alone)"]
          if config.get("clean_fraction") else []),
        *([f"- warm-started from `{config['init_from']}` (see the history below)"] if config.get("init_from") else []),
        *([f"- shipped weights: the weight-by-weight average {metadata['soup']} — the previous default and "
           "this run, two fine-tunings of one lineage (see the history below for why and what each gives)"]
          if metadata.get("soup") else []),
        (f"- phases: {config.get('g_pretrain_steps', 0)} L1-only generator steps (no discriminator), then "
         f"{config['d_pretrain_steps']} discriminator-only steps, then {config['steps']} joint steps "
         f"k1·L1 + k2·L_GAN with k1 = {config['k1']}, k2 = {config['k2']}"
         if shipped_step > config.get("g_pretrain_steps", 0) else
         f"- phases: L1-only generator steps (no discriminator), stopped at step {shipped_step} of the "
         f"{config.get('g_pretrain_steps', 0)} planned, before this run's discriminator and joint phases "
         "(the adversarial phases of the runs it was warm-started from are in the history below)"),
        f"- steps: {total_steps} in all (batch {config['batch_size']}), AdamW lr {config['lr_g']} cosine over the "
        f"generator's steps, EMA {config['ema_decay']}",
        f"- wall time: {elapsed / 3600:.2f} h on {hardware}; precision `{config.get('precision', 'auto')}`",
        f"- k2 note: the spec's default k2 = 1e-4 multiplies a *sum* over the discriminator's patch logits "
        f"({config['batch_size']}·16·16 = {config['batch_size'] * 256} per batch of {config['patch_size']}² crops), so "
        "at 1e-4 the GAN term is ~10× the L1 term in value and dominates its gradient; PSNR fell while it did "
        "(see the history). This run used the k2 above, where the GAN term is a few % of the loss.",
        "",
        f"## Validation curve (EMA weights, {config['val_samples']} fixed val crops of {config['patch_size']}², default degradations)",
        "",
        f"degraded input: PSNR {baseline['psnr']:.2f} dB, SSIM {baseline['ssim']:.4f}",
        "",
        "| step | phase | PSNR (dB) | SSIM | soft input kept (dB) | wall time (s) |",
        "|---|---|---|---|---|---|",
        *[f"| {r['step']} | {PHASES[r['kind']]} | {r['psnr']:.2f} | {r['ssim']:.4f} | "
          f"{format(r['soft_psnr'], '.2f') if 'soft_psnr' in r else ''} | {r.get('elapsed_s', '')} |" for r in curve],
        "",
        (f"Shipped: the average above (`{Path(args.weights).name}`); this run's own EMA weights at step {shipped_step} "
         "are its second half." if metadata.get("soup") else f"Shipped: EMA weights at step {shipped_step} (`{args.weights}`)."),
        "",
        FAILURES,
    ]
    for note in args.notes:
        lines += ["", Path(note).read_text()]
    target.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {target} ({target.stat().st_size / 1e6:.1f} MB) and {target.with_suffix('.md')}")


if __name__ == "__main__":
    main()
