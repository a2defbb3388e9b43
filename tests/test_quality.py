"""Quality classifier: network, crop pooling, class definitions, labeller, training + resume,
model files, and the ``vidrestore quality`` CLI.

A tiny classifier is trained once per module on a generated labelled set (3 classes × 8
textured 128-px images with clearly separated degradations); test_curate.py reuses it.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import shutil
import signal
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import textured_image, write_audio_only
from vidrestore.cli import main
from vidrestore.degrade import ops
from vidrestore.degrade.sample import GaussianBlur, GaussianNoise, Jpeg, MotionBlur, Resample
from vidrestore.errors import ModelError
from vidrestore.io import Image, from_float, to_float, write_image
from vidrestore.nets.quality import CLASSES, QualityNet, crop_boxes, crop_stack, expected_score, log_bands, pooled_probabilities
from vidrestore.quality import (
    QualityModel,
    QualityTrainConfig,
    label_folder,
    load_labels,
    load_quality_model,
    plan_severity,
    sample_class_plan,
    save_quality_model,
    train_quality,
)
from vidrestore.train.config import apply_overrides
from vidrestore.train.loop import TrainingError

ROOT = Path(__file__).resolve().parents[1]

TINY_NET = ["net.stage_channels=8,16,16"]
TINY_RUN = TINY_NET + ["batch_size=8", "crop_size=64", "crop_count=4", "lr=0.003", "warmup_steps=3", "threads=1",
                       "patience=100"]


def photo_like(seed: int, height: int, width: int) -> np.ndarray:
    """Textured uint8 RGB with faint sensor noise: what the synthetic "good" class looks like."""
    clean = to_float(textured_image(seed, height, width))
    return from_float(ops.gaussian_noise(clean, mean=0.0, sigma=0.004, seed=seed), np.uint8)


def degrade_to(pixels: np.ndarray, label: str, seed: int) -> np.ndarray:
    """Clearly separated synthetic classes: medium = mild blur + noise, poor = heavy blur, noise, JPEG 20."""
    x = to_float(pixels)
    if label == "medium":
        x = ops.gaussian_noise(ops.gaussian_blur(x, kernel_size=7, sigma=1.2), mean=0.0, sigma=0.02, seed=seed)
    elif label == "poor":
        x = ops.gaussian_noise(ops.gaussian_blur(x, kernel_size=13, sigma=3.0), mean=0.0, sigma=0.08, seed=seed)
        x = ops.jpeg(x, quality=20)
    return from_float(x, np.uint8)


def make_labelled_set(root: Path) -> Path:
    """``root/{train,val}/{poor,medium,good}/*.png``: 8 and 3 images per class."""
    for split, count, offset in (("train", 8, 0), ("val", 3, 100)):
        for label in CLASSES:
            for index in range(count):
                pixels = degrade_to(photo_like(offset + index, 128, 128), label, offset + index)
                write_image(root / split / label / f"{index}.png", Image(pixels=pixels))
    return root


def tiny_config(data: Path, out: Path, *extra: str) -> QualityTrainConfig:
    overrides = TINY_RUN + [f"train_data={data / 'train'}", f"val_data={data / 'val'}", f"out_dir={out}", *extra]
    return apply_overrides(QualityTrainConfig(), overrides)


@pytest.fixture(scope="module")
def labelled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_labelled_set(tmp_path_factory.mktemp("labelled"))


@pytest.fixture(scope="module")
def trained(labelled: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("run")
    summary = train_quality(tiny_config(labelled, out, "epochs=10", "samples_per_epoch=160"), progress=False)
    return out, summary


# ---------------------------------------------------------------------------------------- network
def test_net_forward_backward_any_size_every_parameter_learns():
    torch.manual_seed(0)
    model = QualityNet(stage_channels=(4, 8))
    images = torch.rand(2, 3, 37, 53, requires_grad=True)
    logits = model(images)
    assert logits.shape == (2, len(CLASSES)) and torch.isfinite(logits).all()
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 2])).backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    # Fine detail is seen at full resolution: the finest log band is |x - G_0.7 x| of the input pixels.
    first = model.features[0]
    assert isinstance(first, torch.nn.Conv2d) and first.in_channels == 3 * len(model.sigmas)
    image = torch.rand(1, 3, 24, 24)
    bands = log_bands(image, model.sigmas, model.floor)
    assert bands.shape == (1, 3 * len(model.sigmas), 24, 24)
    flat = log_bands(torch.full((1, 3, 24, 24), 0.5), model.sigmas, model.floor)
    assert torch.allclose(flat, torch.full_like(flat, math.log(model.floor)), atol=1e-4)  # no detail: the floor
    assert bands[:, :3].mean() > flat[:, :3].mean() + 3.0  # white noise lives in the finest band
    with pytest.raises(ValueError):
        model(torch.rand(3, 32, 32))


def test_crop_boxes_span_the_whole_image_at_native_resolution():
    boxes = crop_boxes(1000, 3000, crop_size=224, count=8)
    assert len(boxes) == 8 and len(set(boxes)) == 8
    tops, lefts = [t for t, _ in boxes], [left for _, left in boxes]
    assert min(tops) == 0 and max(tops) + 224 == 1000 and min(lefts) == 0 and max(lefts) + 224 == 3000
    image = np.random.default_rng(0).random((300, 500, 3), dtype=np.float32)
    stack = crop_stack(image, crop_size=64, count=6)
    for crop, (top, left) in zip(stack, crop_boxes(300, 500, crop_size=64, count=6)):
        assert torch.equal(crop, torch.from_numpy(image[top : top + 64, left : left + 64].transpose(2, 0, 1).copy()))
    small = crop_stack(image[:40, :50], crop_size=64, count=4)  # padded, never resized
    assert small.shape == (1, 3, 64, 64) and torch.equal(small[0, :, :40, :50], torch.from_numpy(image[:40, :50].transpose(2, 0, 1).copy()))


def test_expected_score_orders_classes():
    assert expected_score(torch.tensor([1.0, 0.0, 0.0])) == 0.0
    assert expected_score(torch.tensor([0.0, 1.0, 0.0])) == 0.5
    assert expected_score(torch.tensor([0.0, 0.0, 1.0])) == 1.0
    assert expected_score(torch.tensor([0.2, 0.3, 0.5])) == pytest.approx(0.65)


def test_half_blurred_image_shifts_probabilities_by_half(trained):
    out, _ = trained
    model = QualityModel(out / "quality.safetensors")
    sharp = to_float(photo_like(500, 128, 256))
    blurred = to_float(degrade_to(photo_like(500, 128, 256), "poor", 500))
    half = np.concatenate([blurred[:, :128], sharp[:, 128:]], axis=1)
    p_sharp, p_blurred, p_half = (model.probabilities(x) for x in (sharp, blurred, half))
    assert p_blurred[0] > p_sharp[0] + 0.3, (p_sharp, p_blurred)  # the classifier sees the damage
    # 4 crops of 64 px over 128×256: two in each half, so the pooled result is the average of halves.
    left_only = pooled_probabilities(model.model, crop_stack(np.ascontiguousarray(blurred[:, :128]), crop_size=64, count=2))
    right_only = pooled_probabilities(model.model, crop_stack(np.ascontiguousarray(sharp[:, 128:]), crop_size=64, count=2))
    assert torch.allclose(p_half, (left_only + right_only) / 2, atol=1e-5)
    assert p_sharp[0] < p_half[0] < p_blurred[0]


# ------------------------------------------------------------------------------ class definitions
def test_class_plans_follow_the_documented_severities():
    untouched = 0
    for seed in range(150):
        for label in CLASSES:
            plan = sample_class_plan(label, seed)
            assert plan == sample_class_plan(label, seed)  # replayable
            assert len(plan.ops) <= {"good": 2, "medium": 2, "poor": 3}[label]
            severity = plan_severity(plan)
            for op in plan.ops:
                match label, op:
                    case "good", Jpeg(quality=q):
                        assert 90 <= q <= 100
                    case "good", GaussianNoise(sigma=s):
                        assert 0.001 <= s <= 0.004
                    case "medium", GaussianBlur(sigma=s):
                        assert 0.8 <= s <= 1.5
                    case "medium", MotionBlur(length=length):
                        assert 2 <= length <= 4
                    case "medium", Resample(scale=scale):
                        assert 1.5 <= scale <= 2.0
                    case "medium", GaussianNoise(sigma=s):
                        assert 0.01 <= s <= 0.03
                    case "medium", Jpeg(quality=q):
                        assert 50 <= q <= 75
                    case "poor", GaussianBlur(sigma=s):
                        assert s >= 2.5
                    case "poor", MotionBlur(length=length):
                        assert length >= 8
                    case "poor", Resample(scale=scale):
                        assert scale >= 3.0
                    case "poor", GaussianNoise(sigma=s):
                        assert s >= 0.06
                    case "poor", Jpeg(quality=q):
                        assert q <= 30
                    case _:
                        pytest.fail(f"{label} drew an undocumented op {op}")
            if label == "good":
                untouched += not plan.ops
                assert severity <= 0.22
            elif label == "medium":
                assert 0.1 <= severity <= 1.5 and plan.ops
            else:
                assert severity >= 1.0
    assert 30 <= untouched <= 70  # about a third of good samples are untouched


def test_labeller_writes_classes_with_severities_and_resumes(tmp_path):
    clean = tmp_path / "clean"
    for index in range(2):
        write_image(clean / "sub" / f"photo{index}.png", Image(pixels=photo_like(index, 200, 240)))
    (clean / "notes.txt").write_text("not an image")
    counts = label_folder(clean, tmp_path / "out", crops_per_image=2, crop_size=64, seed=3, jobs=1, progress=False)
    assert counts == {"photos": 2, "samples": 12, "skipped": 0, "too_small": 0, "failed": 0}
    for label in CLASSES:
        assert sorted(p.relative_to(tmp_path / "out" / label).as_posix() for p in (tmp_path / "out" / label).rglob("*.png")) == [
            f"sub/photo{i}.png__c{k:03d}.png" for i in range(2) for k in range(2)
        ]
    rows = list(csv.DictReader(open(tmp_path / "out/labels.csv")))
    assert len(rows) == 12
    severity = {label: [float(r["severity"]) for r in rows if r["label"] == label] for label in CLASSES}
    assert max(severity["good"]) < min(severity["medium"]) and max(severity["medium"]) < 1.5 and min(severity["poor"]) >= 1.0
    for row in rows:
        assert row["source"] in ("sub/photo0.png", "sub/photo1.png") and (tmp_path / "out" / row["path"]).is_file()
        assert row["label"] == "good" or json.loads(row["plan"])  # degraded classes record their plan
    items = load_labels(tmp_path / "out")
    assert len(items) == 12 and {CLASSES[i.label] for i in items} == set(CLASSES)
    assert all(i.severity is not None for i in items)
    before = {p: p.read_bytes() for p in (tmp_path / "out").rglob("*.png")}
    again = label_folder(clean, tmp_path / "out", crops_per_image=2, crop_size=64, seed=3, jobs=1, progress=False)
    assert again == {"photos": 2, "samples": 0, "skipped": 2, "too_small": 0, "failed": 0}
    assert {p: p.read_bytes() for p in (tmp_path / "out").rglob("*.png")} == before
    # Other settings into the same folder would mix two sets (and leave crops no longer listed).
    with pytest.raises(ValueError, match="labelled with other settings .*crop_size 64 → 96"):
        label_folder(clean, tmp_path / "out", crops_per_image=2, crop_size=96, seed=3, jobs=1, progress=False)
    assert {p: p.read_bytes() for p in (tmp_path / "out").rglob("*.png")} == before
    (tmp_path / "out" / "label.json").write_text("[1, 2]")  # damaged: one clear error, not a traceback
    with pytest.raises(ValueError, match="label.json: damaged"):
        label_folder(clean, tmp_path / "out", crops_per_image=2, crop_size=64, seed=3, jobs=1, progress=False)


def test_labeller_keeps_photos_with_the_same_stem_apart(tmp_path):
    from vidrestore.io import read_image

    clean = tmp_path / "clean"
    for seed, name in enumerate(("x.png", "x.jpg", "a/b.png", "a__b.png")):
        write_image(clean / name, Image(pixels=photo_like(seed, 96, 96)))
    counts = label_folder(clean, tmp_path / "out", crops_per_image=1, crop_size=64, scale_range=(1.0, 1.0), seed=0,
                          jobs=1, progress=False)
    assert counts["samples"] == 12
    rows = list(csv.DictReader(open(tmp_path / "out/labels.csv")))
    assert len({r["path"] for r in rows}) == 12  # one sample file per row
    for row in (r for r in rows if r["label"] == "good"):  # a good sample is its own source's crop, nearly untouched
        top, left = int(row["top"]), int(row["left"])
        source = to_float(read_image(clean / row["source"]).pixels)[top : top + 64, left : left + 64]
        assert np.abs(to_float(read_image(tmp_path / "out" / row["path"]).pixels) - source).mean() < 0.03, row  # another photo: ≈ 0.2


def test_labeller_skips_photos_smaller_than_the_crop(tmp_path, capsys):
    clean = tmp_path / "clean"
    write_image(clean / "big.png", Image(pixels=photo_like(1, 96, 128)))
    write_image(clean / "small.png", Image(pixels=photo_like(2, 20, 20)))
    write_image(clean / "narrow.png", Image(pixels=photo_like(3, 200, 40)))
    write_image(clean / "dot.png", Image(pixels=photo_like(4, 1, 1)))
    counts = label_folder(clean, tmp_path / "out", crops_per_image=1, crop_size=64, seed=0, jobs=1, progress=False)
    assert counts == {"photos": 4, "samples": 3, "skipped": 0, "too_small": 3, "failed": 0}
    assert {r["source"] for r in csv.DictReader(open(tmp_path / "out/labels.csv"))} == {"big.png"}
    assert main(["quality", "label", str(clean), str(tmp_path / "cli"), "--crops-per-image", "1", "--crop-size", "64",
                 "--jobs", "1"]) == 0
    assert "3 samples written, 0 photos already done, 3 smaller than a 64² crop (skipped)" in capsys.readouterr().out


def test_load_labels_from_csv_and_errors(tmp_path, labelled):
    listing = tmp_path / "list.csv"
    listing.write_text(f"path,label\n{labelled / 'train/poor/0.png'},poor\n{labelled / 'train/good/1.png'},GOOD\n")
    assert [(i.path.name, i.label) for i in load_labels(listing)] == [("0.png", 0), ("1.png", 2)]
    listing.write_text(f"{labelled / 'train/poor/0.png'},awful\n")
    with pytest.raises(ValueError, match="awful"):
        load_labels(listing)
    with pytest.raises(FileNotFoundError):
        load_labels(tmp_path / "missing")


# --------------------------------------------------------------------------------------- training
def test_training_learns_the_classes(trained):
    out, summary = trained
    curve = [json.loads(line) for line in open(out / "metrics.jsonl")]
    assert len(curve) == 10 and summary["epoch"] == 10
    assert curve[-1]["train_loss"] < curve[0]["train_loss"] - 0.2
    assert summary["best_val_accuracy"] >= 0.66  # chance is 1/3
    confusion = np.array(summary["best_confusion"])
    assert confusion.shape == (3, 3) and confusion.sum() == 9 and np.trace(confusion) == round(9 * summary["best_val_accuracy"])
    model, metadata = load_quality_model(out / "quality.safetensors")
    assert metadata["arch"] == "quality" and json.loads(metadata["classes"]) == list(CLASSES)
    assert metadata["crop_size"] == "64" and json.loads(metadata["config"])["stage_channels"] == [8, 16, 16]
    assert float(metadata["val_accuracy"]) == pytest.approx(summary["best_val_accuracy"], abs=1e-4)
    assert json.loads((out / "config.json").read_text())["epochs"] == 10


def test_resume_reproduces_uninterrupted_run(labelled, tmp_path):
    common = ["epochs=3", "samples_per_epoch=24"]
    straight = train_quality(tiny_config(labelled, tmp_path / "a", *common), progress=False)
    first = train_quality(tiny_config(labelled, tmp_path / "b", *common, "stop_after=1"), progress=False)
    assert first["interrupted"] and first["epoch"] == 1
    second = train_quality(tiny_config(labelled, tmp_path / "b", *common), resume=True, progress=False)
    assert second["epoch"] == 3 and not straight["interrupted"]
    a = torch.load(tmp_path / "a/checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "b/checkpoint.pt", weights_only=True)
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert [json.loads(x)["val_loss"] for x in open(tmp_path / "a/metrics.jsonl")] == [
        json.loads(x)["val_loss"] for x in open(tmp_path / "b/metrics.jsonl")
    ]


def test_ctrl_c_mid_epoch_saves_and_resume_is_exact(labelled, tmp_path, monkeypatch, capsys):
    """Ctrl-C inside an epoch finishes the batch and saves where it is (exit 130); the resume
    continues from that batch to the uninterrupted run's weights and curve."""
    common = ["epochs=2", "samples_per_epoch=32"]  # 4 batches of 8 per epoch
    straight = train_quality(tiny_config(labelled, tmp_path / "a", *common), progress=False)
    assert not straight["interrupted"] and straight["stopped_by"] is None
    calls = {"n": 0}
    real_forward = QualityNet.forward

    def forward(self, x):
        calls["n"] += self.training  # BatchNorm recalibration and validation run in eval mode
        if self.training and calls["n"] == 6:  # epoch 2, batch 2
            signal.raise_signal(signal.SIGINT)
        return real_forward(self, x)

    monkeypatch.setattr(QualityNet, "forward", forward)
    args = ["quality", "train", "--train-data", str(labelled / "train"), "--val-data", str(labelled / "val"),
            "--out", str(tmp_path / "b"), *[a for item in TINY_RUN + common for a in ("--set", item)]]
    assert main(args) == 130
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert first["interrupted"] and first["stopped_by"] == "signal" and first["epoch"] == 1
    assert torch.load(tmp_path / "b/checkpoint.pt", weights_only=True)["batch"] == 2
    monkeypatch.setattr(QualityNet, "forward", real_forward)
    assert main(["quality", "train", "--out", str(tmp_path / "b"), "--resume"]) == 0
    a = torch.load(tmp_path / "a/checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "b/checkpoint.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 2 and "batch" not in b
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    curve = [json.loads(x) for x in open(tmp_path / "a/metrics.jsonl")]
    assert curve == [json.loads(x) for x in open(tmp_path / "b/metrics.jsonl")]


def test_a_mid_epoch_resume_keeps_its_batch_size(labelled, tmp_path, monkeypatch):
    """The saved place is a batch index: another batch size would skip or repeat crops."""
    common = ["epochs=2", "samples_per_epoch=32"]
    real_forward = QualityNet.forward

    def forward(self, x):
        if self.training:
            signal.raise_signal(signal.SIGINT)
        return real_forward(self, x)

    monkeypatch.setattr(QualityNet, "forward", forward)
    first = train_quality(tiny_config(labelled, tmp_path, *common), progress=False)
    assert first["stopped_by"] == "signal" and torch.load(tmp_path / "checkpoint.pt", weights_only=True)["batch"] == 1
    assert first["model"] is None and not (tmp_path / "quality.safetensors").exists()  # named none it had not written
    monkeypatch.setattr(QualityNet, "forward", real_forward)
    before = (tmp_path / "config.json").read_bytes()
    with pytest.raises(TrainingError, match="resume it with the batch_size and samples_per_epoch it started with"):
        train_quality(tiny_config(labelled, tmp_path, *common, "batch_size=16"), resume=True, progress=False)
    assert (tmp_path / "config.json").read_bytes() == before
    assert train_quality(tiny_config(labelled, tmp_path, *common), resume=True, progress=False)["epoch"] == 2


def test_early_stopping(labelled, tmp_path):
    config = tiny_config(labelled, tmp_path, "epochs=20", "samples_per_epoch=8", "patience=1", "lr=1e-9")
    summary = train_quality(config, progress=False)
    assert summary["stopped_early"] and summary["epoch"] < 20
    # A finished run stays finished: resuming trains no further epoch and rewrites no model.
    files = {name: (tmp_path / name).read_bytes() for name in ("metrics.jsonl", "last.safetensors", "checkpoint.pt")}
    again = train_quality(config, resume=True, progress=False)
    assert again["stopped_early"] and again["epoch"] == summary["epoch"]
    assert {name: (tmp_path / name).read_bytes() for name in files} == files


# ------------------------------------------------------------------------------------ model files
def test_shipped_classifier_orders_a_real_photo_by_degradation():
    """The shipped model on a real photo it never trained on (the README sample, from the corpus's
    validation split): clean ≥ mildly degraded ≥ heavily degraded in score, and heavy damage is poor."""
    from vidrestore.quality import QualityModel, default_quality_model_path
    from vidrestore.data import load_rgb_float

    if not default_quality_model_path().is_file():
        pytest.fail("the package ships no quality-v1.safetensors")
    model = QualityModel()
    clean = load_rgb_float(ROOT / "samples/photo_clean.png")
    mild = ops.jpeg(ops.gaussian_noise(clean, mean=0.0, sigma=0.02, gray=False, seed=1), quality=60)
    heavy = ops.gaussian_noise(ops.gaussian_blur(clean, kernel_size=13, sigma=3.5), mean=0.0, sigma=0.1, gray=False, seed=2)
    results = [model.predict_array(image) for image in (clean, mild, heavy)]
    scores = [r.score for r in results]
    assert scores[0] > scores[1] > scores[2], scores
    assert results[2].label == "poor" and results[0].label != "poor", [r.label for r in results]


def test_model_file_errors(tmp_path, monkeypatch):
    import vidrestore.quality as quality

    monkeypatch.setattr(quality, "default_quality_model_path", lambda: tmp_path / "quality-v1.safetensors")
    with pytest.raises(ModelError, match="train one .* or pass --model"):
        load_quality_model()
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, str(tmp_path / "other.safetensors"), metadata={"arch": "unet"})
    with pytest.raises(ModelError, match="not a vidrestore quality model"):
        load_quality_model(tmp_path / "other.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ModelError, match="not a readable"):
        load_quality_model(tmp_path / "junk.safetensors")
    model = QualityNet(stage_channels=(4,))
    save_quality_model(tmp_path / "q.safetensors", model, {"stage_channels": [4]})
    loaded, _ = load_quality_model(tmp_path / "q.safetensors")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))


# -------------------------------------------------------------------------------------------- CLI
def _write_video(path: Path, frames: list[np.ndarray]) -> None:
    from vidrestore.io import VideoWriter

    with VideoWriter(path, width=frames[0].shape[1], height=frames[0].shape[0], fps=Fraction(25), codec="ffv1") as writer:
        for frame in frames:
            writer.write(frame)


def test_predict_leaves_an_audio_only_file_in_a_folder_alone(trained, tmp_path, capsys, caplog):
    """A .3gp voice memo beside the pictures failed the run (exit 1); named on its own it still does."""
    out, _ = trained
    model = str(out / "quality.safetensors")
    write_image(tmp_path / "media/good.png", Image(pixels=photo_like(900, 128, 160)))
    write_audio_only(tmp_path / "media/memo.3gp")
    assert main(["quality", "predict", str(tmp_path / "media"), "--model", model, "--format", "csv"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert len(rows) == 2 and rows[1].split(",")[0].endswith("good.png")
    assert "memo.3gp: no video stream (audio only?); left alone" in caplog.text
    assert main(["quality", "predict", str(tmp_path / "media/memo.3gp"), "--model", model]) == 1


def test_predict_cli_formats(trained, tmp_path, capsys):
    out, _ = trained
    model = str(out / "quality.safetensors")
    media = tmp_path / "media"
    write_image(media / "good.png", Image(pixels=photo_like(900, 128, 160)))
    write_image(media / "poor.png", Image(pixels=degrade_to(photo_like(901, 128, 160), "poor", 901)))
    _write_video(media / "clip.mkv", [photo_like(902 + i, 96, 128) for i in range(12)])
    (media / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")

    assert main(["quality", "predict", str(media), "--model", model, "--format", "csv", "--frames", "3"]) == 1
    captured = capsys.readouterr()
    rows = list(csv.DictReader(captured.out.splitlines()))
    assert [Path(r["path"]).name for r in rows] == ["clip.mkv", "good.png", "poor.png"]
    for row in rows:
        p = [float(row[k]) for k in ("p_poor", "p_medium", "p_good")]
        assert sum(p) == pytest.approx(1.0, abs=1e-4) and row["class"] == CLASSES[int(np.argmax(p))]
        assert float(row["score"]) == pytest.approx(expected_score(torch.tensor(p)), abs=1e-4)
    by_name = {Path(r["path"]).name: r for r in rows}
    assert float(by_name["good.png"]["score"]) > float(by_name["poor.png"]["score"])
    assert "broken.png" in captured.err and "failed" in captured.err

    assert main(["quality", "predict", str(media / "good.png"), str(media / "poor.png"), "--model", model, "--format", "jsonl"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [Path(r["path"]).name for r in records] == ["good.png", "poor.png"]
    assert set(records[0]) == {"path", "class", "p_poor", "p_medium", "p_good", "score"}
    assert records[0]["p_good"] == pytest.approx(float(by_name["good.png"]["p_good"]), abs=1e-5)

    assert main(["quality", "predict", str(media / "good.png"), "--model", model]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["class", "p_poor", "p_medium", "p_good", "score", "path"]
    fields = lines[1].split()
    assert fields[0] == by_name["good.png"]["class"] and fields[-1].endswith("good.png") and len(lines) == 2

    assert main(["quality", "predict", str(media / "missing.png"), "--model", model]) == 2
    missing = capsys.readouterr()
    assert missing.out == "" and "missing.png: no such file or folder" in missing.err  # no table header first

    for device in ["gpu"] + ([] if torch.cuda.is_available() else ["cuda"]):  # one line, no traceback
        assert main(["quality", "predict", str(media / "good.png"), "--model", model, "--device", device]) == 2
        err = capsys.readouterr().err
        assert f"{device!r}" in err and len(err.strip().splitlines()) == 1, err


def test_cli_label_and_train_end_to_end(labelled, tmp_path, capsys):
    clean = tmp_path / "clean"
    write_image(clean / "a.png", Image(pixels=photo_like(7, 160, 160)))
    assert main(["quality", "label", str(clean), str(tmp_path / "set"), "--crops-per-image", "2", "--crop-size", "64",
                 "--jobs", "1"]) == 0
    assert "6 samples written" in capsys.readouterr().out
    args = ["quality", "train", "--train-data", str(labelled / "train"), "--val-data", str(tmp_path / "set"),
            "--out", str(tmp_path / "run"), "--epochs", "1"] + [a for item in TINY_RUN for a in ("--set", item)]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["epoch"] == 1 and Path(summary["model"]).is_file()
    assert main(["quality", "train", "--out", str(tmp_path / "run"), "--set", "no_such_key=1"]) == 2
    assert "unknown config key" in capsys.readouterr().err


def test_video_frames_are_evenly_spaced_with_or_without_a_frame_count(tmp_path, monkeypatch):
    import vidrestore.io as media
    from vidrestore.quality import sample_video_frames

    frames = [np.full((32, 48, 3), 10 * i, dtype=np.uint8) for i in range(12)]  # frame i holds value 10·i
    _write_video(tmp_path / "clip.mkv", frames)

    def indices(count: int) -> list[int]:
        return [round(float(f.mean()) * 255 / 10) for f in sample_video_frames(tmp_path / "clip.mkv", count)]

    assert indices(4) == [0, 4, 7, 11]
    assert indices(1) == [0] and indices(50) == list(range(12))
    real_probe = media.probe
    monkeypatch.setattr(media, "probe", lambda path: dataclasses.replace(real_probe(path), frame_count=0))
    assert indices(3) == [0, 4, 8]  # unknown length: every 2^k-th frame, bounded memory


def test_a_new_run_never_overwrites_a_finished_one(labelled, trained, tmp_path):
    """Without --resume, quality train replaced the run's weights and checkpoint and appended to its
    curve. It now refuses, like vidrestore train; a changed net on --resume is one line too."""
    out = tmp_path / "copy"
    shutil.copytree(trained[0], out)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    with pytest.raises(TrainingError, match="already holds a quality run"):
        train_quality(tiny_config(labelled, out, "epochs=1"), progress=False)
    with pytest.raises(TrainingError, match=r"does not fit these settings .*changed since it was saved: .*net.stage_channels"):
        train_quality(tiny_config(labelled, out, "net.stage_channels=16,16"), resume=True, progress=False)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


@pytest.mark.parametrize("override, message", [
    ("batch_size=0", "batch_size must be at least 1"),
    ("epochs=0", "epochs must be at least 1"),  # was accepted: the summary named a model it never wrote
    ("lr=0", "lr must be > 0"),
    ("val_fraction=1", r"val_fraction must be in \(0, 1\)"),
])
def test_bad_quality_settings_are_refused_up_front(labelled, tmp_path, override, message):
    with pytest.raises(ValueError, match=message):
        train_quality(tiny_config(labelled, tmp_path / "run", override), progress=False)
    assert not (tmp_path / "run").exists()


def test_quality_cli_option_and_path_errors_are_one_line(labelled, trained, tmp_path, capsys):
    from vidrestore.cli import main

    photos = tmp_path / "photos"
    write_image(photos / "a.png", Image(pixels=photo_like(1, 160, 160)))
    for argv, message in (
        (["quality", "label", str(photos), str(tmp_path / "l"), "--crop-size", "0"], "must be >= 16"),
        (["quality", "label", str(photos), str(tmp_path / "l"), "--crops-per-image", "0"], "must be >= 1"),
        (["quality", "label", str(photos), str(tmp_path / "l"), "--scale-range", "abc"], "expected two numbers"),
        (["quality", "predict", str(photos), "--frames", "0"], "must be >= 1"),
    ):
        with pytest.raises(SystemExit):
            main(argv)
        assert message in capsys.readouterr().err
    # An output path that is a file, a config that is no JSON object: one line, exit 2.
    config = tmp_path / "list.json"
    config.write_text("[1, 2]")
    for argv, message in (
        (["quality", "label", str(photos), str(config)], "list.json is a file, not a folder"),
        (["quality", "train", "--config", str(config)], "expected a JSON object of settings, got a list"),
        (["train", "--config", str(config)], "expected a JSON object of settings, got a list"),
        (["train", "--out", str(photos / "a.png"), "--train-data", str(labelled), "--val-data", str(labelled)],
         "not a folder"),
    ):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    # predict: a named file of another type fails; nothing to judge is an error, not an empty table.
    notes = tmp_path / "notes.txt"
    notes.write_text("no picture")
    model = str(trained[0] / "quality.safetensors")
    assert main(["quality", "predict", str(notes), "--model", model]) == 1
    assert "not an image or video" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["quality", "predict", str(tmp_path / "empty"), "--model", model]) == 2
    assert "no images or videos" in capsys.readouterr().err


def test_labeller_does_not_read_its_own_output_inside_the_photos(tmp_path):
    photos = tmp_path / "photos"
    for index in range(2):
        write_image(photos / f"p{index}.png", Image(pixels=photo_like(index, 160, 160)))
    first = label_folder(photos, photos / "labels", crops_per_image=1, crop_size=64, jobs=1, progress=False)
    second = label_folder(photos, photos / "labels2", crops_per_image=1, crop_size=64, jobs=1, progress=False)
    again = label_folder(photos, photos / "labels", crops_per_image=1, crop_size=64, jobs=1, progress=False)
    assert first["photos"] == second["photos"] == again["photos"] == 2


def test_labeller_output_folder_above_the_photos_hides_nothing(tmp_path, monkeypatch):
    photos = tmp_path / "photos"
    for index in range(2):
        write_image(photos / f"p{index}.png", Image(pixels=photo_like(index, 160, 160)))
    (photos / "labels.csv").write_text("my own notes, not a labelled set\n")  # not ours: no header of ours
    monkeypatch.chdir(tmp_path)
    counts = label_folder("photos", ".", crops_per_image=1, crop_size=64, jobs=1, progress=False)
    assert counts["photos"] == 2 and counts["samples"] == 6


def test_predict_piped_into_head_ends_quietly(trained, tmp_path):
    """Each line is flushed as it is judged; a reader that leaves early (``| head -1``) made a
    broken-pipe error message."""
    import subprocess
    import sys

    for index in range(3):
        write_image(tmp_path / f"p{index}.png", Image(pixels=photo_like(index, 128, 128)))
    model = str(trained[0] / "quality.safetensors")
    command = (f"{sys.executable} -m vidrestore.cli quality predict {tmp_path} --model {model} --format jsonl "
               f"| head -c 1")
    result = subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True, timeout=300,
                            cwd=ROOT)
    assert "error" not in result.stderr.lower() and "Traceback" not in result.stderr, result.stderr
