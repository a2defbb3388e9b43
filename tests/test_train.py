"""Training: exact resume, the CLI end to end, 2-process DDP, config overrides, NaN guard."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from vidrestore.degrade import mild_config
from vidrestore.train.config import TrainConfig, apply_overrides, changed_fields
from vidrestore.train import loop
from vidrestore.train.loop import TrainingError, lr_at, train

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "generator.base_channels=4",
    "generator.channel_multipliers=1,2",
    "generator.encoder_blocks=1,1",
    "generator.decoder_blocks=1,1",
    "generator.middle_blocks=1",
    "discriminator.base_channels=4",
    "batch_size=2",
    "patch_size=32",
    "val_samples=2",
    "num_workers=0",
    "warmup_steps=2",
    "log_every=1",
    "image_every=1000",
    "precision=fp32",
    "threads=1",
]


def tiny_config(folder: Path, out: Path, *extra: str) -> TrainConfig:
    overrides = TINY + [f"train_data={folder / 'train'}", f"val_data={folder / 'val'}", f"out_dir={out}", *extra]
    return apply_overrides(TrainConfig(), overrides)


def test_resume_reproduces_uninterrupted_run(image_folder, tmp_path):
    common = ["steps=4", "d_pretrain_steps=2", "val_every=2", "checkpoint_every=100"]
    straight = train(tiny_config(image_folder, tmp_path / "a", *common))
    assert straight["step"] == 6 and not straight["interrupted"]
    first = train(tiny_config(image_folder, tmp_path / "b", *common, "stop_after=3"))
    assert first["step"] == 3 and first["interrupted"]
    second = train(tiny_config(image_folder, tmp_path / "b", *common), resume=True)
    assert second["step"] == 6
    a, b = torch.load(tmp_path / "a/checkpoint.pt", weights_only=True), torch.load(tmp_path / "b/checkpoint.pt", weights_only=True)
    for part in ("generator", "discriminator", "ema"):
        for key in a[part]:
            assert torch.equal(a[part][key], b[part][key]), f"{part}.{key} differs after resume"
    assert a["opt_g"]["state"][0]["exp_avg"].equal(b["opt_g"]["state"][0]["exp_avg"])
    # The run folder holds what a user needs.
    for name in ("config.json", "metrics.jsonl", "best.safetensors", "last.safetensors"):
        assert (tmp_path / "a" / name).is_file(), name
    curve = [json.loads(line) for line in open(tmp_path / "a/metrics.jsonl")]
    assert curve[0]["kind"] == "degraded_input" and any(r["kind"] == "ema" for r in curve)
    assert all(0 < r["soft_psnr"] <= 60 for r in curve[1:]), "every validation also reports the soft-input check"


def test_l1_warmup_phase_then_adversarial_resumes_exactly(image_folder, tmp_path):
    """g_pretrain (L1 only, D untouched) → d_pretrain → adversarial; a stop inside the warm-up resumes exactly."""
    common = ["g_pretrain_steps=3", "steps=2", "d_pretrain_steps=1", "val_every=100", "checkpoint_every=100"]
    straight = train(tiny_config(image_folder, tmp_path / "a", *common))
    assert straight["step"] == 6
    first = train(tiny_config(image_folder, tmp_path / "b", *common, "stop_after=2"))
    assert first["step"] == 2
    state = torch.load(tmp_path / "b/checkpoint.pt", weights_only=True)
    assert not state["opt_d"]["state"], "the discriminator must not train during the L1 warm-up"
    assert state["opt_g"]["state"], "the generator trains during the L1 warm-up"
    train(tiny_config(image_folder, tmp_path / "b", *common), resume=True)
    a, b = torch.load(tmp_path / "a/checkpoint.pt", weights_only=True), torch.load(tmp_path / "b/checkpoint.pt", weights_only=True)
    for part in ("generator", "discriminator", "ema"):
        for key in a[part]:
            assert torch.equal(a[part][key], b[part][key]), f"{part}.{key} differs after resume"
    curve = [json.loads(line) for line in open(tmp_path / "a/metrics.jsonl")]
    kinds = [r["kind"] for r in curve]
    assert kinds == ["degraded_input", "ema_l1", "ema"], kinds
    assert [r["step"] for r in curve[1:]] == [3, 6]
    assert (tmp_path / "a/pretrain.safetensors").is_file() and (tmp_path / "a/best.safetensors").is_file()


def test_a_stop_inside_the_joint_phase_validates_and_keeps_a_best(image_folder, tmp_path):
    """A run interrupted in the joint phase before its first scheduled validation (a deadline, as
    ``scripts/timed_finetune.py`` sets) still leaves ``best``; a stop in the L1 phase does not validate."""
    common = ["g_pretrain_steps=2", "steps=5", "d_pretrain_steps=1", "val_every=100", "checkpoint_every=100"]
    warm = train(tiny_config(image_folder, tmp_path / "l1", *common, "stop_after=1"))
    assert warm["interrupted"] and warm["best_psnr"] is None, "no joint-phase validation yet; -inf is not JSON"
    json.dumps(warm, allow_nan=False)
    assert [json.loads(line)["kind"] for line in open(tmp_path / "l1/metrics.jsonl")] == ["degraded_input"]
    cut = train(tiny_config(image_folder, tmp_path / "joint", *common, "stop_after=4"))
    assert cut["step"] == 4 and cut["interrupted"]
    curve = [json.loads(line) for line in open(tmp_path / "joint/metrics.jsonl")]
    assert [(r["kind"], r["step"]) for r in curve[1:]] == [("ema_l1", 2), ("ema", 4)]
    assert cut["best_psnr"] == curve[-1]["psnr"]
    best = load_file(tmp_path / "joint/best.safetensors")
    assert best and all(torch.isfinite(t).all() for t in best.values())


def test_training_reduces_l1(image_folder, tmp_path):
    """A real (tiny) run learns: validation PSNR of the EMA generator beats the degraded input."""
    config = tiny_config(image_folder, tmp_path, "steps=150", "d_pretrain_steps=2", "val_every=150", "lr_g=3e-3",
                         "generator.base_channels=8", "batch_size=4",
                         "ema_decay=0.9", "degrade.noise.probability=1.0", "degrade.noise.kind_weights=1,0,0",
                         "degrade.noise.gaussian_sigma=0.08,0.1", "degrade.order=noise", "val_samples=4")
    train(config)
    records = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    baseline = next(r for r in records if r["kind"] == "degraded_input")["psnr"]
    final = [r for r in records if r["kind"] == "ema"][-1]["psnr"]
    assert final > baseline + 1.0, (baseline, final)


def test_sample_balanced_l1_changes_training(image_folder, tmp_path):
    """l1_sample_eps changes what the generator learns; a huge eps is the plain mean."""
    common = ["g_pretrain_steps=2", "steps=2", "d_pretrain_steps=1", "val_every=100", "checkpoint_every=100"]
    weights = {}
    for name, eps in (("plain", "0"), ("balanced", "0.01"), ("huge", "1e9")):
        train(tiny_config(image_folder, tmp_path / name, *common, f"l1_sample_eps={eps}"))
        weights[name] = torch.load(tmp_path / name / "checkpoint.pt", weights_only=True)["generator"]
    assert any(not torch.allclose(weights["plain"][k], weights["balanced"][k]) for k in weights["plain"])
    for key, value in weights["plain"].items():
        assert torch.allclose(value, weights["huge"][key], atol=1e-5), key


def test_nan_stops_with_clear_message(image_folder, tmp_path):
    config = tiny_config(image_folder, tmp_path, "steps=3", "d_pretrain_steps=0", "lr_g=1e30", "lr_d=1e30",
                         "grad_clip=1e30", "warmup_steps=1")
    with pytest.raises(TrainingError, match="non-finite loss"):
        train(config)
    # Losses are read only every log_every steps (no per-step GPU sync), but always before a save:
    # a run that went non-finite between two reads stops before writing anything.
    late = tiny_config(image_folder, tmp_path / "late", "steps=6", "d_pretrain_steps=0", "lr_g=1e30", "lr_d=1e30",
                       "grad_clip=1e30", "warmup_steps=1", "log_every=100", "checkpoint_every=5", "val_every=100")
    with pytest.raises(TrainingError, match="non-finite loss between steps 1 and 5"):
        train(late)
    assert not (tmp_path / "late" / "checkpoint.pt").exists() and not (tmp_path / "late" / "last.safetensors").exists()


def test_cli_train_smoke_and_safetensors_export(image_folder, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "vidrestore.cli", "train", "--train-data", str(image_folder / "train"),
           "--val-data", str(image_folder / "val"), "--out", str(out), "--steps", "2",
           *[a for item in TINY + ["d_pretrain_steps=1", "val_every=1"] for a in ("--set", item)]]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["step"] == 3
    from vidrestore.weights import load_generator

    model, metadata = load_generator(out / "best.safetensors")
    assert metadata["arch"] == "unet" and model.depth == 1
    assert set(load_file(out / "best.safetensors")) == set(model.state_dict())
    # Unknown keys are refused with a clear error, not ignored.
    bad = subprocess.run([*cmd, "--set", "no_such_key=1"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "unknown config key" in bad.stderr
    # So are values out of range, and a new run into this run's folder: one line each, exit 2.
    for extra, message in ((["--set", "val_every=0"], "val_every must be at least 1"), ([], "already holds a training run")):
        bad = subprocess.run([*cmd, *extra], capture_output=True, text=True, timeout=120)
        assert bad.returncode == 2 and message in bad.stderr and len(bad.stderr.strip().splitlines()) == 1, bad.stderr


def test_ddp_two_cpu_processes_agree(image_folder, tmp_path):
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "vidrestore.cli",
           "train", "--train-data", str(image_folder / "train"), "--val-data", str(image_folder / "val"), "--out", str(out),
           "--steps", "3", *[a for item in TINY + ["d_pretrain_steps=1", "val_every=3"] for a in ("--set", item)]]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    summaries = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(summaries) == 1, result.stdout  # rank 0 reports; replicas_agree is an all-gather over both
    assert summaries[0]["world_size"] == 2 and summaries[0]["replicas_agree"] and summaries[0]["step"] == 4
    assert (out / "best.safetensors").is_file()


def test_resuming_with_another_world_size_says_the_global_batch_changed(image_folder, tmp_path, caplog):
    """Each process draws batch_size pairs: a 2-process run resumed in one process trains on half
    the global batch from there on. It was silent; it is now named with the other changed settings."""
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    settings = [a for item in TINY + ["d_pretrain_steps=1", "val_every=3"] for a in ("--set", item)]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "vidrestore.cli",
           "train", "--train-data", str(image_folder / "train"), "--val-data", str(image_folder / "val"), "--out", str(out),
           "--steps", "2", *settings]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    with caplog.at_level("WARNING", logger="vidrestore.train.loop"):
        summary = train(tiny_config(image_folder, out, "d_pretrain_steps=1", "val_every=3", "steps=3"), resume=True)
    assert summary["step"] == 4
    assert "world_size (2 -> 1 processes: global batch 4 -> 2)" in caplog.text
    assert "steps" in caplog.text  # the other change is still named


def test_overrides_and_lr_schedule():
    config = apply_overrides(TrainConfig(), ["generator.base_channels=48", "degrade.jpeg.quality=30,90", "k2=0.5"])
    assert config.generator.base_channels == 48 and config.degrade.jpeg.quality == (30, 90) and config.k2 == 0.5
    assert TrainConfig().generator.base_channels == 32, "defaults must not be mutated"
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ValueError, match="unknown config key"):
        apply_overrides(TrainConfig(), ["generator.nope=1"])
    for bad, message in (("defocus_sigma=1.5", "defocus_sigma=1.5: expected 2 comma-separated values"),
                         ("compile=maybe", "compile=maybe: not a boolean"), ("batch_size=x", "batch_size=x: invalid")):
        with pytest.raises(ValueError, match=message):  # the key is named, not only the value
            apply_overrides(TrainConfig(), [bad])
    # A partial group in a config file keeps the field's own defaults: ``mild`` stays gentle.
    partial = TrainConfig.from_dict({"mild_fraction": 0.5, "mild": {"jpeg": {"quality": [85, 100]}}})
    assert partial.mild.jpeg.quality == (85, 100) and partial.mild.jpeg.probability == mild_config().jpeg.probability
    assert partial.mild.noise == mild_config().noise and partial.mild.blur.sigma == (0.3, 1.0)
    assert partial.degrade == TrainConfig().degrade
    assert changed_fields(TrainConfig().to_dict(), partial.to_dict()) == ["mild.jpeg.quality", "mild_fraction"]
    assert changed_fields(config.to_dict(), json.loads(json.dumps(config.to_dict()))) == []
    assert lr_at(0, total=100, base=1.0, warmup=10, min_ratio=0.1) == pytest.approx(0.1)
    assert lr_at(10, total=100, base=1.0, warmup=10, min_ratio=0.1) == pytest.approx(1.0)
    assert lr_at(100, total=100, base=1.0, warmup=10, min_ratio=0.1) == pytest.approx(0.1)


def test_soft_input_check_scores_change_not_quality():
    """The validation's soft check: soft (halved and enlarged) clean crops through the model,
    scored against themselves — an identity keeps them (capped at 60 dB), a sharpener does not."""
    from vidrestore.train.loop import _evaluate, _soften

    from conftest import textured_image

    clean = torch.from_numpy(textured_image(7, height=129, width=130)).permute(2, 0, 1)[None].float() / 255
    soft = _soften(clean)
    assert soft.shape == clean.shape and soft.min() >= 0 and soft.max() <= 1
    assert (soft - clean).abs().mean() > 0.003, "softening changes the crop"
    cpu = torch.device("cpu")
    kept, _ = _evaluate(torch.nn.Identity(), soft, soft, cpu, torch.float32, cap=60.0)
    assert kept == 60.0

    class Sharpen(torch.nn.Module):
        def forward(self, x):
            return x + 1.5 * (x - torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False))

    sharpened, _ = _evaluate(Sharpen(), soft, soft, cpu, torch.float32, cap=60.0)
    assert 20 < sharpened < 45


def test_train_only_trains_the_named_parameters(image_folder, tmp_path):
    """``train_only=gate`` on a gate grown onto trained weights: the gate changes, nothing else."""
    base = tiny_config(image_folder, tmp_path / "base", "steps=3", "d_pretrain_steps=1", "val_every=100")
    train(base)
    config = tiny_config(image_folder, tmp_path / "gate", "steps=0", "g_pretrain_steps=4", "d_pretrain_steps=0",
                         "val_every=100", "ema_decay=0", "lr_g=1e-2", "generator.gate=true", "train_only=gate",
                         f"init_from={tmp_path / 'base' / 'last.safetensors'}")
    train(config)
    before = load_file(tmp_path / "base" / "last.safetensors")
    after = load_file(tmp_path / "gate" / "last.safetensors")
    assert set(after) - set(before) == {"gate.weight", "gate.bias"}
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert after["gate.weight"].abs().sum() > 0
    with pytest.raises(TrainingError, match="matches no generator parameter"):
        train(tiny_config(image_folder, tmp_path / "none", "steps=1", "train_only=nothing"))


@pytest.mark.skipif(not (shutil.which("c++") or shutil.which("g++")), reason="torch.compile on a CPU needs a C++ compiler")
def test_compiled_training_matches_eager(image_folder, tmp_path):
    """``compile=true`` trains the same weights as eager (to rounding) and saves plain names."""
    common = ["steps=2", "g_pretrain_steps=2", "d_pretrain_steps=1", "val_every=100"]
    train(tiny_config(image_folder, tmp_path / "eager", *common))
    train(tiny_config(image_folder, tmp_path / "compiled", *common, "compile=true"))
    eager = load_file(tmp_path / "eager" / "last.safetensors")
    compiled = load_file(tmp_path / "compiled" / "last.safetensors")
    assert set(eager) == set(compiled)
    for key in eager:
        torch.testing.assert_close(compiled[key], eager[key], rtol=1e-4, atol=1e-5)


def same_weights(a: Path, b: Path) -> bool:
    first, second = torch.load(a / "checkpoint.pt", weights_only=True), torch.load(b / "checkpoint.pt", weights_only=True)
    return all(torch.equal(first[part][key], second[part][key])
               for part in ("generator", "discriminator", "ema") for key in first[part])


def test_bad_training_files_are_skipped_and_resume_stays_exact(image_folder, tmp_path, caplog):
    """An unreadable, a too-small and an undecodable file among the sources: training goes on,
    each is named once, and a stopped run resumes to the uninterrupted run's weights."""
    from test_data import add_bad_sources, truncated_png

    data = tmp_path / "data"
    shutil.copytree(image_folder, data)
    add_bad_sources(data / "train", patch_size=32)
    truncated_png(data / "train" / "cut.png", 1)
    common = ["steps=8", "d_pretrain_steps=1", "val_every=100", "checkpoint_every=100", "batch_size=4"]
    with caplog.at_level("WARNING"):
        straight = train(tiny_config(data, tmp_path / "a", *common))
    assert straight["step"] == 9 and not straight["interrupted"]
    for name in ("empty.png", "garbage.jpg", "noise.mp4", "small.png", "cut.png"):
        assert name in caplog.text, name
    train(tiny_config(data, tmp_path / "b", *common, "stop_after=4"))
    train(TrainConfig.load(tmp_path / "b" / "config.json"), resume=True)
    assert same_weights(tmp_path / "a", tmp_path / "b")


def test_a_data_worker_ignores_ctrl_c(image_folder, tmp_path):
    """Ctrl-C reaches the data worker too: it must keep serving while the main process finishes
    its step and saves."""
    config = tiny_config(image_folder, tmp_path, "num_workers=1")
    batches = iter(loop.train_loader(config, start=0, total=20))
    next(batches)
    os.kill(batches._workers[0].pid, signal.SIGINT)
    assert len(list(batches)) == 19


def test_a_loader_failing_after_ctrl_c_still_saves(image_folder, tmp_path, monkeypatch):
    """A worker killed by the same Ctrl-C (before it could ignore it) breaks the batch in flight:
    the steps done are still saved."""
    real_loader = loop.train_loader

    def dying_loader(*args, **kwargs):
        batches = iter(real_loader(*args, **kwargs))
        yield next(batches)
        signal.raise_signal(signal.SIGINT)
        raise ConnectionResetError(104, "Connection reset by peer")

    monkeypatch.setattr(loop, "train_loader", dying_loader)
    summary = train(tiny_config(image_folder, tmp_path, "steps=4", "d_pretrain_steps=1", "checkpoint_every=100"))
    assert summary["interrupted"] and summary["step"] == 1
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["step"] == 1


def test_a_planned_stop_exits_0_and_the_summary_says_what_stopped_the_run(image_folder, tmp_path, capsys):
    """stop_after is a planned stop, not an interruption: exit 0 (Ctrl-C is the shell's 130); the
    summary names the cause. A stop_after at the run's end is no stop."""
    from vidrestore.cli import main

    out = tmp_path / "run"
    cmd = ["train", "--train-data", str(image_folder / "train"), "--val-data", str(image_folder / "val"),
           "--out", str(out), "--steps", "2",
           *[a for item in TINY + ["d_pretrain_steps=1", "val_every=100", "stop_after=1"] for a in ("--set", item)]]
    assert main(cmd) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["step"] == 1 and summary["interrupted"] and summary["stopped_by"] == "stop_after"
    whole = train(tiny_config(image_folder, tmp_path / "whole", "steps=2", "d_pretrain_steps=1", "val_every=100",
                              "stop_after=3"))
    assert whole["step"] == 3 and not whole["interrupted"] and whole["stopped_by"] is None


def test_ctrl_c_is_exit_130(image_folder, tmp_path, monkeypatch, capsys):
    from vidrestore.cli import main

    real_loader = loop.train_loader

    def interrupted_loader(*args, **kwargs):
        for index, batch in enumerate(real_loader(*args, **kwargs)):
            if index == 1:
                signal.raise_signal(signal.SIGINT)
            yield batch

    monkeypatch.setattr(loop, "train_loader", interrupted_loader)
    cmd = ["train", "--train-data", str(image_folder / "train"), "--val-data", str(image_folder / "val"),
           "--out", str(tmp_path), "--steps", "2",
           *[a for item in TINY + ["d_pretrain_steps=1", "val_every=100"] for a in ("--set", item)]]
    assert main(cmd) == 130
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["step"] == 2 and summary["stopped_by"] == "signal"


def test_a_new_run_into_a_folder_with_leftovers_of_an_uncheckpointed_run(image_folder, tmp_path):
    """Weights left by a run that stopped before its first checkpoint are refused by name (not
    overwritten, not mixed with: `best` would be one this run never beat), unless they are this
    run's init_from; the old TensorBoard events are cleared so two curves do not overlap."""
    common = ["steps=1", "d_pretrain_steps=1", "val_every=100"]
    train(tiny_config(image_folder, tmp_path / "a", *common))
    leftovers = tmp_path / "b"
    (leftovers / "tb").mkdir(parents=True)
    (leftovers / "tb" / "events.out.tfevents.1.old").write_bytes(b"old curve")
    shutil.copy(tmp_path / "a" / "best.safetensors", leftovers / "best.safetensors")
    with pytest.raises(TrainingError, match="holds best.safetensors from an earlier run but no checkpoint"):
        train(tiny_config(image_folder, leftovers, *common))
    assert (leftovers / "best.safetensors").is_file() and not (leftovers / "config.json").exists()
    train(tiny_config(image_folder, leftovers, *common, f"init_from={leftovers / 'best.safetensors'}"))
    assert not (leftovers / "tb" / "events.out.tfevents.1.old").exists()


def test_a_failed_resume_leaves_the_run_as_it_was(image_folder, tmp_path):
    """A resume that cannot load the checkpoint, or that stops on a non-finite loss, gives a
    one-line error and leaves config.json as it was, so a plain resume still works."""
    common = ["steps=4", "d_pretrain_steps=1", "val_every=100", "checkpoint_every=100"]
    run = tmp_path / "run"
    train(tiny_config(image_folder, run, *common, "stop_after=2"))
    saved = (run / "config.json").read_text()
    with pytest.raises(TrainingError, match=r"does not fit these settings \(.*size mismatch.*changed since it was "
                                            r"saved: generator.base_channels$"):
        train(tiny_config(image_folder, run, *common, "generator.base_channels=8"), resume=True)
    with pytest.raises(TrainingError, match="non-finite loss"):
        train(tiny_config(image_folder, run, *common, "lr_g=1e30", "lr_d=1e30", "grad_clip=1e30"), resume=True)
    assert (run / "config.json").read_text() == saved
    for name, data in (("truncated", (run / "checkpoint.pt").read_bytes()[:5000]), ("empty", b"")):
        broken = tmp_path / name
        shutil.copytree(run, broken)
        (broken / "checkpoint.pt").write_bytes(data)
        with pytest.raises(TrainingError, match="checkpoint.pt: unreadable checkpoint") as error:
            train(tiny_config(image_folder, broken, *common), resume=True)
        assert "\n" not in str(error.value)
        assert (broken / "config.json").read_text() == saved
    assert train(TrainConfig.load(run / "config.json"), resume=True)["step"] == 5


def test_a_new_run_refuses_a_folder_holding_a_run(image_folder, tmp_path):
    common = ["steps=1", "d_pretrain_steps=1", "val_every=100"]
    train(tiny_config(image_folder, tmp_path / "run", *common))
    before = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir() if p.is_file()}
    with pytest.raises(TrainingError, match="already holds a training run: continue it with --resume, or pick another --out"):
        train(tiny_config(image_folder, tmp_path / "run", *common, "generator.base_channels=8"))
    assert {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir() if p.is_file()} == before
    # Its weights without the checkpoint (deleted to save space) are still refused, by name.
    (tmp_path / "run" / "checkpoint.pt").unlink()
    with pytest.raises(TrainingError, match="holds best.safetensors, last.safetensors from an earlier run"):
        train(tiny_config(image_folder, tmp_path / "run", *common))
    # What a run that stopped before its first checkpoint left is no run: a new one starts over.
    for name in ("best.safetensors", "last.safetensors"):
        (tmp_path / "run" / name).unlink()
    train(tiny_config(image_folder, tmp_path / "run", *common))
    curve = [json.loads(line) for line in open(tmp_path / "run" / "metrics.jsonl")]
    assert [r["kind"] for r in curve].count("degraded_input") == 1
    # Resuming a folder that holds no run changes nothing on disk.
    with pytest.raises(TrainingError, match="nothing to resume"):
        train(tiny_config(image_folder, tmp_path / "typo", *common), resume=True)
    assert not (tmp_path / "typo").exists()


@pytest.mark.parametrize("override, message", [
    ("val_every=0", "val_every must be at least 1"),
    ("checkpoint_every=0", "checkpoint_every must be at least 1"),
    ("log_every=0", "log_every must be at least 1"),
    ("batch_size=0", "batch_size must be at least 1"),
    ("patch_size=0", "patch_size must be at least 8"),
    ("steps=-5", "steps must be at least 0"),
    ("ema_decay=2", r"ema_decay must be in \[0, 1\]"),
])
def test_bad_settings_are_refused_before_anything_is_written(image_folder, tmp_path, override, message):
    with pytest.raises(ValueError, match=message):
        train(tiny_config(image_folder, tmp_path / "run", override))
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_is_a_clear_error(image_folder, tmp_path):
    with pytest.raises(TrainingError, match="device=cuda: .*CUDA is not available"):
        train(tiny_config(image_folder, tmp_path / "run", "device=cuda"))
    with pytest.raises(TrainingError, match="device=gpu: unknown device 'gpu'; use auto, cpu, cuda or cuda:N"):
        train(tiny_config(image_folder, tmp_path / "run", "device=gpu"))
    assert not (tmp_path / "run").exists()


def test_stop_after_does_not_carry_over_to_a_resume(image_folder, tmp_path):
    """A plain resume (the CLI loads config.json) runs to the end, not one step more."""
    train(tiny_config(image_folder, tmp_path, "steps=3", "d_pretrain_steps=1", "val_every=100", "stop_after=2"))
    assert json.loads((tmp_path / "config.json").read_text())["stop_after"] == 0
    summary = train(TrainConfig.load(tmp_path / "config.json"), resume=True)
    assert summary["step"] == 4 and not summary["interrupted"]


def test_validation_fits_sources_smaller_than_128_px(tmp_path, caplog):
    """Validation crops are 128 px where the sources allow, else the smallest source's side;
    sources smaller than patch_size are skipped by name."""
    from vidrestore.io import Image, write_image

    from conftest import textured_image

    for index, (height, width) in enumerate([(96, 128), (100, 120), (20, 20)]):
        write_image(tmp_path / "val" / f"v{index}.png", Image(pixels=textured_image(index, height=height, width=width)))
    config = tiny_config(tmp_path, tmp_path / "run")
    with caplog.at_level("WARNING"):
        degraded, clean = loop._validation_set(config)
    assert degraded.shape[-2:] == clean.shape[-2:] == (96, 96)
    assert "v2.png: 20x20, smaller than patch_size 32" in caplog.text and "validation crops are 96 px" in caplog.text


def test_no_warm_up_is_allowed():
    """warmup_steps=0 divided by zero during discriminator pretraining (negative generator steps)."""
    assert lr_at(-3, total=10, base=1e-3, warmup=0, min_ratio=0.1) == pytest.approx(1e-3)
    assert lr_at(0, total=10, base=1e-3, warmup=0, min_ratio=0.1) == pytest.approx(1e-3)
    assert lr_at(10, total=10, base=1e-3, warmup=0, min_ratio=0.1) == pytest.approx(1e-4)


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as handle:
        return [int(child) for child in handle.read().split()]


def test_ddp_a_stop_seen_by_one_rank_stops_both_at_the_same_step(image_folder, tmp_path):
    """Ctrl-C or SIGTERM can reach the ranks at different steps (here: rank 1 alone). Each acted on
    its own flag: one left the loop for the final all-gather while the other was in the next
    step's gradient all-reduce, and both hung. The ranks now agree on the stop, save and exit."""
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "vidrestore.cli",
           "train", "--train-data", str(image_folder / "train"), "--val-data", str(image_folder / "val"), "--out", str(out),
           "--steps", "100000",
           *[a for item in TINY + ["d_pretrain_steps=1", "log_every=7", "val_every=100000", "checkpoint_every=100000"]
             for a in ("--set", item)]]
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                               start_new_session=True)
    try:
        import time

        deadline = time.monotonic() + 240
        while not (out / "metrics.jsonl").exists():  # rank 0 has validated the input: training starts
            assert process.poll() is None and time.monotonic() < deadline, "training did not start"
            time.sleep(0.2)
        time.sleep(2.0)
        ranks = {}
        for pid in _children(process.pid):
            environ = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
            ranks.update({entry.split(b"=")[1].decode(): pid for entry in environ if entry.startswith(b"RANK=")})
        os.kill(ranks["1"], signal.SIGINT)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)  # the ranks too: they hold the output pipes
            process.communicate()
    summaries = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    assert len(summaries) == 1, stderr[-3000:]
    summary = summaries[0]
    assert summary["replicas_agree"] and summary["interrupted"] and summary["stopped_by"] == "signal"
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == summary["step"] < 100000
    assert summary["step"] % 7 == 0  # agreed at a check step (every log_every), not where the signal came


def test_grad_clip_0_is_no_clipping_and_a_negative_one_is_refused(image_folder, tmp_path):
    """clip_grad_norm_ with 0 scaled every gradient to 0: a run with grad_clip=0 did not learn."""
    from vidrestore.weights import load_generator

    common = ("steps=0", "g_pretrain_steps=3", "d_pretrain_steps=0", "lr_g=1e-2", "ema_decay=0")
    train(tiny_config(image_folder, tmp_path / "run", *common, "grad_clip=0"))
    trained, _ = load_generator(tmp_path / "run" / "last.safetensors")
    assert float(trained.tail.weight.detach().abs().sum()) > 0  # the zero-initialised tail moved
    with pytest.raises(ValueError, match="grad_clip must be >= 0"):
        train(tiny_config(image_folder, tmp_path / "bad", *common, "grad_clip=-1"))


def test_fp16_training_is_refused_and_auto_falls_back_to_fp32(image_folder, tmp_path, monkeypatch):
    """No loss scaling: fp16 would flush the L1 gradients (about 1e-6 per pixel) to zero. auto on a
    GPU without bf16 picked fp16; it now trains in fp32 (seen here through a stand-in resolver)."""
    with pytest.raises(TrainingError, match="precision=fp16: fp16 is not supported on CPU"):
        train(tiny_config(image_folder, tmp_path / "cpu", "precision=fp16"))
    monkeypatch.setattr(loop, "resolve_precision", lambda spec, device: torch.float16)
    with pytest.raises(TrainingError, match="precision=fp16: training in fp16 would lose its gradients"):
        train(tiny_config(image_folder, tmp_path / "gpu", "precision=fp16"))
    seen = []
    monkeypatch.setattr(loop, "autocast", lambda device, dtype: seen.append(dtype) or torch.autocast("cpu", enabled=False))
    train(tiny_config(image_folder, tmp_path / "auto", "precision=auto", "steps=1", "d_pretrain_steps=0"))
    assert seen and set(seen) == {torch.float32}


def test_ctrl_c_during_a_validation_still_saves(image_folder, tmp_path, monkeypatch):
    """The save decision was taken before validating: a Ctrl-C arriving during validation broke out
    of the loop unsaved, while the log said "checkpoint saved" and the folder could neither be
    resumed nor reused."""
    real_evaluate = loop._evaluate
    calls = []

    def interrupted_evaluate(model, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # the degraded input's, then step 1's two (damaged, soft): step 2's first
            signal.raise_signal(signal.SIGINT)
        return real_evaluate(model, *args, **kwargs)

    monkeypatch.setattr(loop, "_evaluate", interrupted_evaluate)
    summary = train(tiny_config(image_folder, tmp_path, "steps=50", "d_pretrain_steps=0", "val_every=1",
                                "checkpoint_every=100"))
    assert summary["interrupted"] and summary["step"] < 50
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["step"] == summary["step"]
    assert (tmp_path / "last.safetensors").is_file()


def test_after_a_non_finite_loss_before_any_checkpoint_the_message_says_start_again(image_folder, tmp_path):
    with pytest.raises(TrainingError, match="start again: no checkpoint had been written") as failure:
        train(tiny_config(image_folder, tmp_path, "steps=3", "d_pretrain_steps=0", "lr_g=1e30", "lr_d=1e30",
                          "grad_clip=1e30", "warmup_steps=1"))
    assert "resume from" not in str(failure.value)


@pytest.mark.parametrize("override, message", [
    ("lr_min_ratio=5", r"lr_min_ratio must be in \[0, 1\]"),
    ("l1_sample_eps=-1", "l1_sample_eps must be >= 0"),
    ("lr_g=-1", "lr_g must be > 0"),
    ("seed=-1", r"seed must be in \[0, 2\*\*63\)"),
    ("scale_range=2,1", "scale_range must satisfy 0 < low <= high"),
    ("mild_fraction=1.5", r"mild_fraction must be in \[0, 1\]"),
    ("out_dir=", "out_dir must name a folder"),
    ("val_data=", "val_data must name a folder"),  # was: the current folder, searched recursively
    ("train_data= ", "train_data must name a folder"),
    ("lr_g=inf", "lr_g must be > 0 and finite"),
    ("k2=-1", "k2 must be >= 0 and finite"),
    ("generator.base_channels=0", "generator.base_channels and channel_multipliers must be at least 1"),
    ("generator.channel_multipliers=0,2", "generator.base_channels and channel_multipliers must be at least 1"),
    ("generator.channel_multipliers=1,2,4", "need one entry per level, got 3, 2, 2"),
    ("generator.middle_blocks=-1", "must be at least 0"),
    ("generator.encoder_blocks=-1,1", "must be at least 0"),
    ("discriminator.base_channels=0", "discriminator.base_channels must be at least 1 and layers at least 0"),
    ("discriminator.layers=-2", "discriminator.base_channels must be at least 1 and layers at least 0"),
    ("val_samples=1000000", "would hold 549 GiB of validation crops of 128 px in memory"),  # was: silent for minutes
])
def test_more_bad_settings_are_refused_before_the_data_is_read(image_folder, tmp_path, override, message, monkeypatch):
    monkeypatch.setattr(loop, "PairDataset", None)  # reading the data would fail differently
    with pytest.raises(ValueError, match=message):
        train(tiny_config(image_folder, tmp_path / "run", override))
    assert not (tmp_path / "run").exists()


def test_resume_from_another_folder_and_metrics_without_repeats(image_folder, tmp_path, monkeypatch):
    """config.json kept the data paths as typed: a plain --resume from another folder could not
    find them. After a kill between a validation and the next checkpoint, the resumed run wrote
    those validations' steps a second time."""
    from vidrestore.cli import main

    monkeypatch.chdir(image_folder)
    out = tmp_path / "run"
    settings = [a for item in TINY + ["d_pretrain_steps=0", "val_every=1", "checkpoint_every=2"] for a in ("--set", item)]
    assert main(["train", "--train-data", "train", "--val-data", "val", "--out", str(out), "--steps", "5",
                 "--set", "stop_after=3", *settings]) == 0
    assert torch.load(out / "checkpoint.pt", weights_only=False)["step"] == 3
    saved = json.loads((out / "config.json").read_text())
    assert Path(saved["train_data"]).is_absolute() and Path(saved["val_data"]).is_absolute()
    # As if killed after step 4's validation and during step 5's, before the next checkpoint.
    with open(out / "metrics.jsonl", "a") as handle:
        handle.write(json.dumps({"step": 4, "kind": "ema", "psnr": 1.0}) + "\n" + '{"step": 5, "ki')
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--out", str(out), "--resume"]) == 0
    steps = [json.loads(line)["step"] for line in open(out / "metrics.jsonl")]
    assert steps == [0, 1, 2, 3, 4, 5]


def test_validation_sources_smaller_than_the_training_patch_are_used(tmp_path, caplog):
    from vidrestore.io import Image, write_image
    from tests.conftest import textured_image

    for split, size in (("train", 192), ("val", 106)):
        for index in range(2):
            write_image(tmp_path / split / f"img{index}.png", Image(pixels=textured_image(index)[:size, :size]))
    config = tiny_config(tmp_path, tmp_path / "run", "patch_size=128", "steps=0", "g_pretrain_steps=1",
                         "d_pretrain_steps=0", "discriminator.layers=3")
    degraded, clean = loop._validation_set(config)
    assert clean.shape[-1] == 106


def test_a_run_killed_before_its_first_checkpoint_starts_again_with_the_same_command(image_folder, tmp_path,
                                                                                        monkeypatch):
    """Killed (or out of disk) after pretrain/best were written but before any checkpoint, the
    same command was refused ("holds best.safetensors ... move them away") and --resume had
    nothing to resume: no command continued the run."""
    common = ("steps=2", "d_pretrain_steps=1", "g_pretrain_steps=1", "val_every=1", "checkpoint_every=100")
    real_save = loop.save_checkpoint

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # as a kill before the first checkpoint (nothing of it written)

    monkeypatch.setattr(loop, "save_checkpoint", killed)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(image_folder, tmp_path, *common))
    assert (tmp_path / "pretrain.safetensors").is_file() and not (tmp_path / "checkpoint.pt").exists()
    monkeypatch.setattr(loop, "save_checkpoint", real_save)
    with pytest.raises(TrainingError, match="no checkpoint to resume"):  # other settings: still refused
        train(tiny_config(image_folder, tmp_path, *common, "seed=5"))
    summary = train(tiny_config(image_folder, tmp_path, *common))
    assert summary["step"] == 4 and (tmp_path / "checkpoint.pt").is_file()


def test_a_full_disk_while_saving_is_one_line_and_keeps_the_last_checkpoint(image_folder, tmp_path, monkeypatch):
    import errno

    train(tiny_config(image_folder, tmp_path, "steps=1", "d_pretrain_steps=1", "stop_after=1"))
    before = (tmp_path / "checkpoint.pt").read_bytes()
    # A kill mid-save left a temporary checkpoint: the next start removes it.
    (tmp_path / ".checkpoint.0123abcd.partial.pt").write_bytes(b"half a checkpoint")

    def full(path, state):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(loop, "save_checkpoint", full)
    with pytest.raises(TrainingError, match=r"could not save step 2 .*No space left on device.*previous checkpoint is intact"):
        train(tiny_config(image_folder, tmp_path, "steps=1", "d_pretrain_steps=1"), resume=True)
    assert (tmp_path / "checkpoint.pt").read_bytes() == before
    assert not (tmp_path / ".checkpoint.0123abcd.partial.pt").exists()


def test_a_damaged_checkpoint_is_named_without_torchs_unsafe_advice(image_folder, tmp_path):
    train(tiny_config(image_folder, tmp_path, "steps=1", "d_pretrain_steps=1", "stop_after=1"))
    (tmp_path / "checkpoint.pt").write_text("garbage")
    with pytest.raises(TrainingError, match="unreadable checkpoint") as failure:
        train(tiny_config(image_folder, tmp_path, "steps=1", "d_pretrain_steps=1"), resume=True)
    assert "weights_only" not in str(failure.value) and "damaged, or not a vidrestore checkpoint" in str(failure.value)


def test_a_full_disk_after_the_checkpoint_names_the_file_that_failed(image_folder, tmp_path, monkeypatch):
    import errno

    real = loop.save_generator

    def full(path, *args, **kwargs):
        if Path(path).name != "last.safetensors":
            return real(path, *args, **kwargs)
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(loop, "save_generator", full)
    with pytest.raises(TrainingError, match=r"last.safetensors: could not save step 1 .*No space left"):
        train(tiny_config(image_folder, tmp_path, "steps=1", "d_pretrain_steps=0", "val_every=100"))
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["step"] == 1  # what did get saved


@pytest.mark.parametrize("settings, message", [
    ({"batch_size": "abc"}, "batch_size: expected int, got 'abc'"),
    ({"batch_size": 2.5}, "batch_size: expected int, got 2.5"),
    ({"batch_size": True}, "batch_size: expected int, got True"),
    ({"generator": 5}, "generator: expected an object of settings, got 5"),
    ({"scale_range": 5}, "scale_range: expected a list, got 5"),
    ({"scale_range": [1]}, r"scale_range: expected 2 values, got \[1\]"),
    ({"generator": {"channel_multipliers": [1, "2"]}}, "generator.channel_multipliers: expected int, got '2'"),
    ({"compile": "no"}, "compile: expected bool, got 'no'"),
])
def test_a_config_file_is_type_checked_like_set(tmp_path, settings, message):
    """--config JSON went into the dataclass as it was: a string batch size, a number for a group or a
    float for an int ended in a traceback, or failed only once training had started."""
    path = tmp_path / "c.json"
    path.write_text(json.dumps(settings))
    with pytest.raises(ValueError, match=message):
        TrainConfig.load(path)
    path.write_text(json.dumps({"lr_g": 1, "scale_range": [1, 2], "generator": {"channel_multipliers": [1, 2]}}))
    loaded = TrainConfig.load(path)  # an integer where a float goes is fine, and lists are tuples
    assert loaded.lr_g == 1.0 and isinstance(loaded.lr_g, float) and loaded.scale_range == (1.0, 2.0)
    assert loaded.generator.channel_multipliers == (1, 2)


def test_a_missing_or_broken_config_file_is_named(tmp_path, capsys):
    """degrade printed JSON's bare message, and a missing file was a raw OS error, in each command."""
    from vidrestore.cli import main

    (tmp_path / "broken.json").write_text("{bad")
    (tmp_path / "in").mkdir()
    for name, message in (("broken.json", "broken.json: not valid JSON"), ("missing.json", "missing.json: no such config file"),
                          ("in", "in: is a folder, not a config file")):
        for command in (["train", "--out", str(tmp_path / "run")], ["degrade", str(tmp_path / "in"), str(tmp_path / "o")],
                        ["quality", "train", "--out", str(tmp_path / "q")]):
            assert main([*command, "--config", str(tmp_path / name)]) == 2
            err = capsys.readouterr().err
            assert message in err and len(err.strip().splitlines()) == 1, (command, err)


def test_a_folder_a_run_is_writing_refuses_a_second_run(image_folder, tmp_path):
    """Two processes writing one run folder interleaved their checkpoints, weights and curves."""
    from vidrestore.io._files import hold_folder

    out = tmp_path / "run"
    out.mkdir()
    holder = hold_folder(out)  # as a running training holds it
    try:
        with pytest.raises(TrainingError, match=r"in use by another process \(pid \d+\).*a training run is writing"):
            train(tiny_config(image_folder, out, "steps=1", "d_pretrain_steps=1"))
        assert not (out / "config.json").exists()
    finally:
        holder.close()
    summary = train(tiny_config(image_folder, out, "steps=1", "d_pretrain_steps=1"))  # released: it runs
    assert summary["step"] == 2


def test_a_run_that_fails_before_its_loop_lets_go_of_its_folder(image_folder, tmp_path, monkeypatch):
    """In one process (a notebook, a test run), a run that failed after claiming its folder must not
    leave it claimed: the next run there was refused as "in use" by its own process."""
    def failing(*args, **kwargs):
        raise MemoryError("out of memory in the first validation")

    monkeypatch.setattr(loop, "_evaluate", failing)
    with pytest.raises(MemoryError) as failure:  # kept, as a notebook keeps the last traceback
        train(tiny_config(image_folder, tmp_path / "run", "steps=1", "d_pretrain_steps=1"))
    monkeypatch.undo()
    assert train(tiny_config(image_folder, tmp_path / "run", "steps=1", "d_pretrain_steps=1"))["step"] == 2
    assert failure.value.args


def test_a_full_disk_at_the_first_checkpoint_says_to_run_the_same_command_again(image_folder, tmp_path, monkeypatch):
    import errno

    def full(path, state):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(loop, "save_checkpoint", full)
    with pytest.raises(TrainingError, match="no checkpoint had been written yet: free space and run the same command"):
        train(tiny_config(image_folder, tmp_path, "steps=1", "d_pretrain_steps=1"))

