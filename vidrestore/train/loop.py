"""The training loop: discriminator pretraining, then alternating D and G steps.

Read it top to bottom. One "step" consumes one batch of ``(degraded, clean)`` pairs:

1. ``step < d_pretrain_steps``: only D learns to tell clean from G's current output (G frozen),
   so the adversarial phase starts with a discriminator that gives G a useful signal.
2. Afterwards, pix2pix order: a D step on real and *detached* fake, then a G step with D frozen
   on L = k1·L1 + k2·L_GAN (see :mod:`vidrestore.losses`).

Every item of every batch is a pure function of (seed, global sample index), and the
checkpoint stores model, optimizer, EMA and RNG state, so ``resume=True`` continues exactly as
an uninterrupted run would. Under ``torchrun`` each process takes its own slice of each global
batch and DDP averages gradients.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Sampler
from tqdm import tqdm

from vidrestore import losses
from vidrestore.data import PairDataset
from vidrestore.device import autocast, resolve_device, resolve_precision
from vidrestore.errors import VidrestoreError
from vidrestore.io._files import FolderInUse, atomic_output, hold_folder, make_folder, remove_stale_partials
from vidrestore.metrics import psnr, ssim
from vidrestore.nets.discriminator import PatchDiscriminator
from vidrestore.nets.unet import UNet
from vidrestore.train import distributed
from vidrestore.train.checkpoint import load_checkpoint, save_checkpoint
from vidrestore.train.config import TrainConfig, changed_fields
from vidrestore.train.ema import EMA
from vidrestore.weights import load_generator, save_generator

__all__ = ["TrainingError", "lr_at", "train", "train_loader", "l1_step"]

log = logging.getLogger(__name__)


class TrainingError(VidrestoreError):
    """Training cannot go on (non-finite loss, bad data, mismatched checkpoint)."""


def lr_at(step: int, *, total: int, base: float, warmup: int, min_ratio: float) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to ``base * min_ratio`` at ``total``."""
    step = max(step, 0)  # the generator's step count is negative during discriminator pretraining
    if warmup > 0 and step < warmup:
        return base * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return base * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


class StepBatches(Sampler[list[int]]):
    """Batches of global sample indices for steps ``start..total-1``: step ``s`` on rank ``r``
    takes indices ``s*B*W + r*B ... + B-1``. Resuming at step ``s`` replays the same data."""

    def __init__(self, *, start: int, total: int, batch_size: int, rank: int, world_size: int) -> None:
        self.start, self.total, self.batch_size, self.rank, self.world_size = start, total, batch_size, rank, world_size

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start, self.total):
            first = (step * self.world_size + self.rank) * self.batch_size
            yield list(range(first, first + self.batch_size))

    def __len__(self) -> int:
        return max(0, self.total - self.start)


def _validation_set(config: TrainConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed validation batch: same crops and degradations in every run with this config
    (and the same validation sources).

    Flat crops (clean std < 0.02: sky, a graphic's uniform fill) are skipped: a degradation can
    leave them bit-identical, and one infinite-PSNR crop would swamp the mean.
    """
    dataset = PairDataset(
        config.val_data,
        patch_size=min(config.patch_size, 64),  # validation needs no training patch: smaller sources shrink the crops
        length=config.val_samples * 20,
        seed=987_654,
        config=config.degrade,
        scale_range=(0.5, 0.5),
        augment=False,
    )
    # 128-px crops (patch_size if larger) score the same with any training patch_size; smaller
    # validation sources make them smaller rather than being refused.
    dataset.patch_size = min(max(config.patch_size, 128), dataset.min_side)
    if dataset.patch_size < 128:
        log.warning("validation crops are %d px, not 128: the smallest validation source is %d px",
                    dataset.patch_size, dataset.min_side)
    pairs = []
    for index in range(len(dataset)):
        degraded, clean = dataset[index]
        if clean.std() >= 0.02:
            pairs.append((degraded, clean))
        if len(pairs) == config.val_samples:
            break
    if not pairs:
        raise TrainingError(f"{config.val_data}: no textured validation crops")
    return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])


def _soften(clean: torch.Tensor) -> torch.Tensor:
    """Clean crops halved (area) and enlarged back (bicubic): soft but undamaged, as upscaled
    footage is. A restorer should leave them as they are (``benchmarks/do_no_harm.py``'s "soft")."""
    half = torch.nn.functional.avg_pool2d(clean, 2)
    return torch.nn.functional.interpolate(half, size=clean.shape[-2:], mode="bicubic", align_corners=False).clamp(0, 1)


@torch.no_grad()
def _evaluate(model: torch.nn.Module, degraded: torch.Tensor, clean: torch.Tensor, device, dtype, batch: int = 16,
              cap: float | None = None):
    """Mean PSNR (each crop's capped at ``cap`` dB if given) and SSIM of ``model(degraded)``."""
    psnrs, ssims = [], []
    for i in range(0, len(degraded), batch):
        x = degraded[i : i + batch].to(device)
        y = clean[i : i + batch].to(device)
        with autocast(device, dtype):
            out = model(x)
        out = out.float().clamp(0, 1)
        psnrs.append(psnr(out, y).clamp(max=cap).cpu() if cap else psnr(out, y).cpu())
        ssims.append(ssim(out, y).cpu())
    return torch.cat(psnrs).mean().item(), torch.cat(ssims).mean().item()


def _generator_config(config: TrainConfig) -> dict[str, Any]:
    return dataclasses.asdict(config.generator)


def _trainable(generator: torch.nn.Module, prefixes: tuple[str, ...]) -> list[torch.nn.Parameter]:
    """The generator parameters named by ``prefixes`` (all when empty); the others are frozen."""
    if not prefixes:
        return list(generator.parameters())
    chosen = []
    for name, parameter in generator.named_parameters():
        keep = any(name == p or name.startswith(p + ".") for p in prefixes)
        parameter.requires_grad_(keep)
        if keep:
            chosen.append(parameter)
    if not chosen:
        raise TrainingError(f"train_only={','.join(prefixes)}: matches no generator parameter")
    return chosen


_RUN_WEIGHTS = ("best.safetensors", "pretrain.safetensors", "last.safetensors")


def train(config: TrainConfig, *, resume: bool = False) -> dict[str, Any]:
    """Run (or resume) training; returns a summary dict. Writes into ``config.out_dir``:
    ``config.json``, ``checkpoint.pt`` (resume state), ``best.safetensors`` / ``last.safetensors``
    (EMA generator), ``metrics.jsonl`` (validation curve) and ``tb/`` (TensorBoard).

    A new run refuses an ``out_dir`` that holds another run's ``checkpoint.pt``. Nothing is written
    before the settings, the checkpoint (when resuming) and the data have been checked, and
    ``config.json`` is rewritten with each checkpoint, so it always describes the saved state.
    The summary's ``best_psnr`` is None until a joint-phase validation has run."""
    config.check()
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    try:
        device = resolve_device(config.device)
    except ValueError as exc:
        raise TrainingError(f"device={config.device}: {exc}") from exc
    dtype = training_precision(config.precision, device)
    out_dir = Path(config.out_dir)
    checkpoint_path = out_dir / "checkpoint.pt"
    if out_dir.exists() and not out_dir.is_dir():
        raise TrainingError(f"{out_dir}: not a folder")
    if resume and not checkpoint_path.is_file():
        raise TrainingError(f"{checkpoint_path}: nothing to resume")
    if not resume and checkpoint_path.exists():
        raise TrainingError(f"{out_dir} already holds a training run: continue it with --resume, or pick another --out")
    # stop_after ends this invocation only: saved, it would stop every later resume one step on.
    # The data paths are saved absolute, so a plain --resume works from any folder.
    saved_config = dataclasses.replace(config, stop_after=0, train_data=_absolute(config.train_data),
                                       val_data=_absolute(config.val_data))
    if not resume:
        # Weights of a run that stopped before its first checkpoint: this run would silently mix
        # with them (a `best` it never beats), and they may be someone's only copy — unless they
        # are the same command's, killed before it saved a checkpoint (no last.safetensors, which
        # every checkpoint writes, and the same settings): that run just starts again.
        stale = [name for name in _RUN_WEIGHTS if (out_dir / name).exists()
                 and (not config.init_from or (out_dir / name).resolve() != Path(config.init_from).resolve())]
        if stale and "last.safetensors" not in stale and _same_run(out_dir / "config.json", saved_config):
            # Left in place: this run writes the same files at the same steps (same settings, same
            # seed), and nothing is lost if it dies before it gets there.
            log.warning("%s: an earlier start of this run stopped before its first checkpoint; starting it again "
                        "(its %s will be replaced as this run reaches them)", out_dir, ", ".join(stale))
        elif stale:
            raise TrainingError(f"{out_dir} holds {', '.join(stale)} from an earlier run but no checkpoint to resume: "
                                "move them away, or pick another --out")
    dist_info = distributed.setup(device)
    if device.type == "cuda" and dist_info.enabled:
        device = torch.device("cuda", dist_info.local_rank)
        torch.cuda.set_device(device)
    main = dist_info.is_main
    torch.manual_seed(config.seed)
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format

    # ---- models, EMA, optimizers
    generator = UNet(**_generator_config(config))
    discriminator = PatchDiscriminator(**dataclasses.asdict(config.discriminator))
    if config.init_from and not resume:
        warm, _ = load_generator(config.init_from)
        try:
            added = generator.load_grown(warm.state_dict())
        except RuntimeError as exc:
            raise TrainingError(f"{config.init_from}: does not match generator config ({exc})") from exc
        if added and main:
            log.info("grown from %s: %d new parts start neutral (the output unchanged): %s", config.init_from, len(added), ", ".join(added))
    generator.to(device, memory_format=memory_format)
    discriminator.to(device, memory_format=memory_format)
    ema = EMA(generator, config.ema_decay)
    opt_g = torch.optim.AdamW(_trainable(generator, config.train_only), lr=config.lr_g, betas=(0.9, 0.99), weight_decay=config.weight_decay)
    opt_d = torch.optim.AdamW(discriminator.parameters(), lr=config.lr_d, betas=(0.5, 0.999))
    total = config.g_pretrain_steps + config.d_pretrain_steps + config.steps
    step, best_psnr, elapsed_before = 0, -math.inf, 0.0
    if resume:
        state = read_checkpoint(checkpoint_path)
        # A moved run folder or a stop_after is no change to the run.
        before = json.loads(state.get("config") or "{}")
        for name in ("train_data", "val_data"):  # saved relative by earlier versions
            if before.get(name):
                before[name] = _absolute(before[name])
        changed = _run_changes(before, saved_config)
        saved_world = state.get("world_size")  # not in checkpoints of earlier versions
        if saved_world is not None and int(saved_world) != dist_info.world_size:
            # Each process draws batch_size pairs: the global batch changes.
            saved_batch = int(before.get("batch_size", config.batch_size))
            changed.append(f"world_size ({saved_world} -> {dist_info.world_size} processes: global batch "
                           f"{int(saved_world) * saved_batch} -> {dist_info.world_size * config.batch_size})")
        try:
            generator.load_state_dict(state["generator"])
            discriminator.load_state_dict(state["discriminator"])
            ema.load_state_dict(state["ema"])
            opt_g.load_state_dict(state["opt_g"])
            opt_d.load_state_dict(state["opt_d"])
            torch.set_rng_state(state["torch_rng"])
            step, best_psnr, elapsed_before = int(state["step"]), float(state["best_psnr"]), float(state["elapsed"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise misfit(checkpoint_path, exc, changed) from exc
        log.info("resumed from %s at step %d", checkpoint_path, step)
        if changed:
            # Allowed (a schedule or thread count may change mid-run) but no longer the run that started.
            log.warning("resuming with changed settings (the run will not replay its start): %s", ", ".join(changed))
    g_model, d_model = generator, discriminator
    if dist_info.enabled:
        ids = [device.index] if device.type == "cuda" else None
        g_model = DistributedDataParallel(generator, device_ids=ids)
        d_model = DistributedDataParallel(discriminator, device_ids=ids)
    if config.compile:
        g_model = torch.compile(g_model)  # weights stay shared with ``generator`` (EMA, checkpoints)

    # ---- data
    loader = train_loader(config, start=step, total=total, rank=dist_info.rank, world_size=dist_info.world_size,
                          pin_memory=device.type == "cuda")
    val_degraded, val_clean = _validation_set(config) if main else (None, None)
    val_soft = _soften(val_clean) if main else None
    run_lock = _claim_run_folder(out_dir, saved_config if not resume else None, step) if main else None
    try:
        writer = _summary_writer(out_dir / "tb") if main else None
        if main and step == 0:
            base_psnr, base_ssim = _evaluate(torch.nn.Identity(), val_degraded, val_clean, device, torch.float32)
            _append_metrics(out_dir, {"step": 0, "kind": "degraded_input", "psnr": base_psnr, "ssim": base_ssim})
            log.info("validation, degraded input: PSNR %.2f dB, SSIM %.4f", base_psnr, base_ssim)
    except BaseException:
        if run_lock is not None:
            run_lock.close()
        raise

    # ---- SIGINT/SIGTERM: finish the step, save, exit
    stop = StopRequest().install()

    def _save() -> None:
        if not main:
            return
        state = {
            "generator": generator.state_dict(),
            "discriminator": discriminator.state_dict(),
            "ema": ema.state_dict(),
            "opt_g": opt_g.state_dict(),
            "opt_d": opt_d.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "step": step,
            "world_size": dist_info.world_size,
            "best_psnr": best_psnr,
            "elapsed": elapsed_before + time.perf_counter() - started,
            "config": json.dumps(saved_config.to_dict()),
        }
        try:
            save_checkpoint(checkpoint_path, state)
        except (OSError, RuntimeError) as exc:
            # RuntimeError: a full disk in torch's zip writer ("unexpected pos ..."); others are not ours.
            disk = isinstance(exc, OSError) or isinstance(exc.__cause__ or exc.__context__, OSError) or "pos" in str(exc)
            if not disk:
                raise
            advice = ("the previous checkpoint is intact: free space and resume" if checkpoint_path.is_file() else
                      "no checkpoint had been written yet: free space and run the same command again")
            raise TrainingError(f"{checkpoint_path}: could not save step {step} ({_brief(exc)}); {advice}") from exc
        _save_weights(out_dir / "config.json", lambda path: saved_config.save(path), step)
        _save_weights(out_dir / "last.safetensors",
                      lambda path: save_generator(path, ema.model, _generator_config(config), {"step": str(step)}), step)

    started = time.perf_counter()
    bar = tqdm(total=total, initial=step, disable=not main, desc="train", dynamic_ncols=True)
    # Losses stay on the device between checks: reading one every step (``.item()``) would make
    # the host wait for the GPU each step instead of queueing the next. ``all_finite`` collects
    # every step's verdict; it is read (one sync) before anything is logged, validated or saved.
    last: dict[str, torch.Tensor] = {}
    all_finite = torch.ones((), dtype=torch.bool, device=device)
    checked_at = step
    finished = False
    try:
        for degraded, clean in _batches(loader, stop, alone=not dist_info.enabled):
            degraded = degraded.to(device, non_blocking=True).contiguous(memory_format=memory_format)
            clean = clean.to(device, non_blocking=True).contiguous(memory_format=memory_format)
            phase = _phase(step, config)
            adversarial = phase == "adversarial"
            # One cosine schedule over the generator's steps (L1 warm-up, then adversarial).
            g_step = step if phase == "g_pretrain" else step - config.d_pretrain_steps
            for group in opt_g.param_groups:
                group["lr"] = lr_at(
                    g_step,
                    total=config.g_pretrain_steps + config.steps,
                    base=config.lr_g,
                    warmup=config.warmup_steps,
                    min_ratio=config.lr_min_ratio,
                )

            if phase == "g_pretrain":
                # L1 only, no discriminator.
                last = {"l1": l1_step(g_model, generator, opt_g, ema, degraded, clean, config=config,
                                      device=device, dtype=dtype, g_step=g_step)}
            else:
                # D step: real vs detached fake (G runs without a graph while D pretrains).
                with autocast(device, dtype), torch.set_grad_enabled(adversarial):
                    fake = g_model(degraded)
                with autocast(device, dtype):
                    d_loss = losses.gan_d_loss(d_model(clean, degraded), d_model(fake.detach(), degraded))
                _optimizer_step(d_loss, opt_d, discriminator, config.grad_clip)
                last = {"d_loss": d_loss.detach()}

            # G step: D frozen, joint loss.
            if adversarial:
                discriminator.requires_grad_(False)
                with autocast(device, dtype):
                    l1_term, l1_value = losses.l1_terms(fake, clean, config.l1_sample_eps)
                    gan_value = losses.gan_g_loss(d_model(fake, degraded))
                    g_loss = losses.joint(l1_term, gan_value, k1=config.k1, k2=config.k2)
                _optimizer_step(g_loss, opt_g, generator, config.grad_clip)
                discriminator.requires_grad_(True)
                ema.update(generator, g_step)
                last.update(l1=l1_value.detach(), gan=gan_value.detach(), g_loss=g_loss.detach())
            for value in last.values():
                all_finite &= torch.isfinite(value)
            step += 1
            bar.update(1)

            if config.stop_after and config.stop_after <= step < total:
                stop.request("stop_after")
            # Steps at which the losses are checked (and, with several processes, a stop is agreed):
            # the same on every rank. A single process acts on a stop after the step it arrives in;
            # under torchrun the ranks agree on it (and on a non-finite loss) at these steps only,
            # because a rank that left the loop a step before another would leave it waiting in
            # DDP's next all-reduce.
            scheduled = (step % config.log_every == 0 or step % config.val_every == 0 or step == total
                         or step == config.g_pretrain_steps or step % config.checkpoint_every == 0
                         or step == config.stop_after)
            if dist_info.enabled:
                stopping, nonfinite = False, False
                if scheduled:
                    local = torch.tensor([stop.by == "signal", stop.by == "stop_after"], device=device)
                    verdict = distributed.any_rank(torch.cat([local, (~all_finite).reshape(1)]), dist_info).tolist()
                    stopping, nonfinite = bool(verdict[0] or verdict[1]), bool(verdict[2])
                    if stopping and not stop.now:  # another rank's: the same cause here
                        stop.request("signal" if verdict[0] else "stop_after")
                    # A signal arriving after the all-reduce waits for the next check step: acted on
                    # now, this rank alone would leave the loop.
            else:
                stopping = stop.now
                nonfinite = (scheduled or stopping) and not bool(all_finite)
            # A stop inside the joint phase (SIGINT, a deadline, ``stop_after``) validates first, so
            # a run cut short there still leaves a ``best`` from the phase the shipped model comes from.
            validate = (step % config.val_every == 0 or step == total or step == config.g_pretrain_steps
                        or (stopping and adversarial))
            save = step % config.checkpoint_every == 0 or stopping
            if scheduled or stopping:
                if nonfinite:  # on any process: every one stops, none saves
                    raise TrainingError(
                        f"non-finite loss between steps {checked_at + 1} and {step} (last: "
                        f"{ {k: float(v) for k, v in last.items()} }); lower lr_g/lr_d or use precision=fp32, "
                        f"then {_after_nonfinite(checkpoint_path)}"
                    )
                checked_at = step
            if main and step % config.log_every == 0:
                values = {k: float(v) for k, v in last.items()}
                bar.set_postfix({k: f"{v:.4g}" for k, v in values.items()})
                for key, value in values.items():
                    writer and writer.add_scalar(f"train/{key}", value, step)
                writer and writer.add_scalar("train/lr_g", opt_g.param_groups[0]["lr"], step)
            if main and phase != "d_pretrain" and validate:
                val_psnr, val_ssim = _evaluate(ema.model, val_degraded, val_clean, device, dtype)
                # Watched, not tracked: a model that sharpens soft footage shows here first.
                soft_psnr, _ = _evaluate(ema.model, val_soft, val_soft, device, dtype, cap=60.0)
                kind = "ema" if adversarial else "ema_l1"
                record = {"step": step, "kind": kind, "psnr": val_psnr, "ssim": val_ssim, "soft_psnr": soft_psnr,
                          "elapsed_s": round(elapsed_before + time.perf_counter() - started, 1),
                          **{k: float(v) for k, v in last.items()}}
                _append_metrics(out_dir, record)
                if writer:
                    writer.add_scalar("val/psnr", val_psnr, step)
                    writer.add_scalar("val/ssim", val_ssim, step)
                    writer.add_scalar("val/soft_psnr", soft_psnr, step)
                tqdm.write(f"step {step} ({phase}): val PSNR {val_psnr:.2f} dB  SSIM {val_ssim:.4f}  "
                           f"soft input kept {soft_psnr:.2f} dB")
                if step == config.g_pretrain_steps:
                    _save_weights(out_dir / "pretrain.safetensors", lambda path: save_generator(
                        path, ema.model, _generator_config(config),
                        {"step": str(step), "val_psnr": f"{val_psnr:.3f}", "val_ssim": f"{val_ssim:.4f}"}), step)
                # The shipped model is the joint-loss one: best is tracked in the adversarial phase.
                if adversarial and val_psnr > best_psnr:
                    best_psnr = val_psnr
                    _save_weights(out_dir / "best.safetensors", lambda path: save_generator(
                        path, ema.model, _generator_config(config),
                        {"step": str(step), "val_psnr": f"{val_psnr:.3f}", "val_ssim": f"{val_ssim:.4f}"}), step)
            if main and writer and step % config.image_every == 0:
                with torch.no_grad(), autocast(device, dtype):
                    preview = ema.model(val_degraded[:4].to(device)).float().clamp(0, 1).cpu()
                writer.add_images("val/degraded_restored_clean", torch.cat([val_degraded[:4], preview, val_clean[:4]]), step)
            if save:
                _save()
            if stopping:
                break
        else:
            # Every step was checked at ``step == total``; a loader that failed after a stop request
            # ends the loop early, with steps since the last check unchecked.
            if not bool(all_finite):
                raise TrainingError(f"non-finite loss between steps {checked_at + 1} and {step}; lower lr_g/lr_d "
                                    f"or use precision=fp32, then {_after_nonfinite(checkpoint_path)}")
            _save()
        if stop.now and main:
            log.warning("stopped: checkpoint saved at step %d; continue with --resume", step)
        replicas_agree = distributed.replicas_agree(generator, dist_info)
        if not replicas_agree:
            raise TrainingError("DDP replicas diverged: generator weights differ between processes")
        finished = True
    finally:
        bar.close()
        stop.uninstall()
        if writer:
            writer.close()
        del g_model, d_model  # DDP's wrappers hold the process group: let it go before it is destroyed
        distributed.teardown(dist_info, synchronize=finished)
        if run_lock is not None:
            run_lock.close()
    return {"step": step, "best_psnr": best_psnr if best_psnr > -math.inf else None, "interrupted": stop.now,
            "stopped_by": stop.by,
            "out_dir": str(out_dir), "world_size": dist_info.world_size, "replicas_agree": replicas_agree}


def _claim_run_folder(out_dir: Path, new_config: TrainConfig | None, step: int) -> Any:
    """Make ``out_dir`` this run's: create it, hold it (two runs writing one folder would interleave
    their checkpoints and curves), clear what killed writers left, and write a new run's
    ``config.json`` (``new_config``; None when resuming at ``step``). Returns the hold, to close."""
    make_folder(out_dir)
    try:
        run_lock = hold_folder(out_dir)
    except FolderInUse as exc:
        raise TrainingError(f"{out_dir}: {exc.strerror}: a training run is writing there; wait for it to end, "
                            "or pick another --out") from None
    try:
        remove_stale_partials([out_dir / name for name in ("checkpoint.pt", "config.json", *_RUN_WEIGHTS)])
        for old in out_dir.glob(".checkpoint.pt*.partial"):  # the same, as versions before 0.1.1 named them
            old.unlink(missing_ok=True)
        if new_config is not None:
            new_config.save(out_dir / "config.json")
            # Left by a run that stopped before its first checkpoint: its curve would mix with this one.
            (out_dir / "metrics.jsonl").unlink(missing_ok=True)
            for events in (out_dir / "tb").glob("events.out.tfevents.*"):
                events.unlink()
        else:
            _trim_metrics(out_dir / "metrics.jsonl", step)
    except BaseException:
        run_lock.close()
        raise
    return run_lock


def _save_weights(path: Path, save: Any, step: int) -> None:
    """``save(path)``; a failure to write (a full disk) is one line naming the file."""
    try:
        save(path)
    except OSError as exc:
        raise TrainingError(f"{path}: could not save step {step} ({_brief(exc)}); free space and resume from the "
                            "last checkpoint") from exc


def training_precision(spec: str, device: torch.device) -> torch.dtype:
    """The autocast dtype a run trains in: ``spec`` as for inference, except that fp16 is refused
    and ``auto`` on a GPU without bf16 trains in fp32. fp16 needs loss scaling, which this loop does
    not do: the L1 term's gradient per pixel (1 / pixels in a batch, about 1e-6) is below fp16's
    smallest normal number."""
    try:
        dtype = resolve_precision(spec, device)
    except ValueError as exc:
        raise TrainingError(f"precision={spec}: {exc}") from exc
    if dtype == torch.float16:
        if spec not in (None, "auto"):
            raise TrainingError("precision=fp16: training in fp16 would lose its gradients (no loss scaling); "
                                "use bf16 where the GPU has it, else fp32 (inference may still use fp16)")
        dtype = torch.float32
    return dtype


def _same_run(config_path: Path, config: TrainConfig) -> bool:
    """Whether ``config_path`` (a run folder's config.json) holds ``config``'s settings."""
    try:
        before = json.loads(config_path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(before, dict) and not _run_changes(before, config)


def _run_changes(before: dict[str, Any], config: TrainConfig) -> list[str]:
    """The settings of ``config`` that differ from a run's saved ``before`` (a moved run folder or a
    ``stop_after`` is no change to the run)."""
    return [name for name in changed_fields(before, config.to_dict()) if name not in ("out_dir", "stop_after")]


def _absolute(path: Any) -> Any:
    """A data path (or a list of them, as a JSON config may give) made absolute."""
    if isinstance(path, (list, tuple)):
        return type(path)(_absolute(p) for p in path)
    return str(Path(path).absolute()) if path else path


def _after_nonfinite(checkpoint_path: Path) -> str:
    """What to do after a non-finite loss: resume from the last checkpoint or, before the first
    one, start over (naming the weights a new run would refuse to mix with)."""
    if checkpoint_path.is_file():
        return f"resume from {checkpoint_path} (--resume: the last checkpoint, before the bad steps)"
    left = [name for name in _RUN_WEIGHTS if (checkpoint_path.parent / name).exists()]
    return (f"start again: no checkpoint had been written" +
            (f" (remove {', '.join(left)} from {checkpoint_path.parent} first, or pick another --out)" if left else ""))


def _batches(loader: DataLoader, stop: StopRequest, *, alone: bool = True) -> Iterator[Any]:
    """``loader``'s batches. A loader that fails once a stop was asked for just ends: Ctrl-C reaches
    every process of the group, and a worker it kills before ``worker_init`` ignores SIGINT breaks
    the transfer in flight. The steps done are whole, so they are saved, not lost to a traceback.
    Not under torchrun (``alone`` False): a rank that left the loop on its own would leave the
    others waiting in a collective, so the failure is raised and torchrun ends the job (the last
    checkpoint is intact)."""
    batches = iter(loader)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except Exception as exc:
            if not stop.now or not alone:
                raise
            log.warning("the data loader failed after the stop request (%s: %s)", type(exc).__name__, exc)
            return
        yield batch


def read_checkpoint(path: Path) -> dict[str, Any]:
    """A run's checkpoint, or a TrainingError saying it cannot be read (shared by both trainers)."""
    try:
        return load_checkpoint(path)
    except Exception as exc:  # torch.load: RuntimeError (truncated), EOFError (empty), ValueError (damaged), ...
        raise TrainingError(f"{path}: unreadable checkpoint ({_brief(exc)})") from exc


def misfit(path: Path, exc: BaseException, changed: list[str]) -> TrainingError:
    """The error for a checkpoint whose state does not load into the models these settings build."""
    return TrainingError(f"{path}: does not fit these settings ({_brief(exc)}); changed since it was saved: "
                         f"{', '.join(changed) or 'nothing'}")


def _brief(exc: BaseException) -> str:
    """The first two lines of an exception's message as one (torch's state-dict errors span many),
    or its type when it has no message."""
    return " ".join(line.strip() for line in str(exc).splitlines()[:2]) or type(exc).__name__


def train_loader(config: TrainConfig, *, start: int, total: int, rank: int = 0, world_size: int = 1,
                 pin_memory: bool = False) -> DataLoader:
    """The training batches of steps ``start..total-1`` for process ``rank`` of ``world_size``:
    (degraded, clean) pairs made on the fly in ``config.num_workers`` worker processes."""
    train_set = PairDataset(
        config.train_data,
        patch_size=config.patch_size,
        length=total * config.batch_size * world_size,
        seed=config.seed,
        config=config.degrade,
        scale_range=config.scale_range,
        mild_config=config.mild,
        mild_fraction=config.mild_fraction,
        clean_fraction=config.clean_fraction,
        defocus_fraction=config.defocus_fraction,
        defocus_sigma=config.defocus_sigma,
    )
    sampler = StepBatches(start=start, total=total, batch_size=config.batch_size, rank=rank, world_size=world_size)
    return DataLoader(
        train_set,
        batch_sampler=sampler,
        num_workers=config.num_workers,
        pin_memory=pin_memory,
        prefetch_factor=4 if config.num_workers > 0 else None,
        # forkserver: a forked worker can inherit a held lock of OpenCV's or OpenMP's thread
        # pool from the parent and hang on its first resize.
        multiprocessing_context="forkserver" if config.num_workers > 0 else None,
        worker_init_fn=worker_init,
    )


def l1_step(g_model: torch.nn.Module, generator: torch.nn.Module, optimizer: torch.optim.Optimizer, ema: EMA,
            degraded: torch.Tensor, clean: torch.Tensor, *, config: TrainConfig, device: torch.device,
            dtype: torch.dtype, g_step: int) -> torch.Tensor:
    """One L1-only generator step (``g_model`` may be the DDP wrapper of ``generator``) and the
    EMA update; returns the plain mean L1, detached and still on the device (reading it syncs)."""
    with autocast(device, dtype):
        l1_term, l1_value = losses.l1_terms(g_model(degraded), clean, config.l1_sample_eps)
        g_loss = config.k1 * l1_term
    _optimizer_step(g_loss, optimizer, generator, config.grad_clip)
    ema.update(generator, g_step)
    return l1_value.detach()


def _optimizer_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, module: torch.nn.Module, grad_clip: float) -> None:
    """Backward, clip ``module``'s gradient norm to ``grad_clip`` (0: no clipping), step ``optimizer``."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(module.parameters(), grad_clip)
    optimizer.step()


def _phase(step: int, config: TrainConfig) -> str:
    """``g_pretrain`` (L1 only), then ``d_pretrain`` (D only), then ``adversarial`` (joint loss)."""
    if step < config.g_pretrain_steps:
        return "g_pretrain"
    if step < config.g_pretrain_steps + config.d_pretrain_steps:
        return "d_pretrain"
    return "adversarial"


class StopRequest:
    """A request to stop after the current step, from SIGINT/SIGTERM (once :meth:`install` ed, in
    the main thread) or from the loop itself (:meth:`request`); ``by`` keeps the first cause
    ("signal", "stop_after"). Shared by the generator's and the quality classifier's training."""

    def __init__(self) -> None:
        self.now, self.by = False, None
        self._previous: dict[int, Any] = {}

    def request(self, by: str) -> None:
        if not self.now:
            self.now, self.by = True, by

    def install(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():  # signal handlers live there only
            self._previous = {sig: signal.signal(sig, lambda *_: self.request("signal"))
                              for sig in (signal.SIGINT, signal.SIGTERM)}
        return self

    def uninstall(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}


def worker_init(worker_id: int) -> None:  # noqa: ARG001
    import cv2

    # Ctrl-C reaches the whole process group. The main process finishes its step and saves; a
    # worker that died of it mid-transfer would crash it instead (ConnectionResetError). SIGTERM
    # keeps its default: DataLoader ends a stuck worker with it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def _trim_metrics(path: Path, step: int) -> None:
    """Drop the records of steps after ``step`` (the checkpoint resumed from): a run killed after
    a validation but before the next checkpoint would otherwise list those steps twice."""
    if not path.is_file():
        return
    lines = path.read_text().splitlines(keepends=True)
    kept = []
    for line in lines:
        try:
            if json.loads(line).get("step", 0) > step:
                continue
        except (json.JSONDecodeError, AttributeError):
            continue  # a line cut by the kill
        kept.append(line)
    if kept != lines:
        with atomic_output(path) as temporary:
            temporary.write_text("".join(kept))


def _append_metrics(out_dir: Path, record: dict[str, Any]) -> None:
    with open(out_dir / "metrics.jsonl", "a") as handle:
        handle.write(json.dumps(record) + "\n")


def _summary_writer(path: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        log.warning("tensorboard is not installed (pip install vidrestore[train]); no TensorBoard logs")
        return None
    return SummaryWriter(str(path))
