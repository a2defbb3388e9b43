"""The helper scripts used to train the shipped model on a rented machine: the compact copy of a
corpus, the fixed-budget training driver and the weight average."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from safetensors import safe_open

from conftest import textured_image
from test_train import TINY
from vidrestore.data import load_rgb
from vidrestore.io import Image, write_image

ROOT = Path(__file__).resolve().parents[1]


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


def test_compact_corpus(tmp_path):
    compact = _script("compact_corpus").compact
    src, dst = tmp_path / "src", tmp_path / "dst"
    big = textured_image(1, height=900, width=1200)  # ~1.1 MP of texture: a large PNG
    rgba = np.concatenate([textured_image(2, height=800, width=800), np.full((800, 800, 1), 128, np.uint8)], axis=2)
    write_image(src / "big.png", Image(pixels=big))
    write_image(src / "rgba.png", Image(pixels=rgba))
    write_image(src / "small.png", Image(pixels=textured_image(3, height=40, width=48)))
    cv2.imwrite(str(src / "photo.jpg"), textured_image(4, height=600, width=700)[:, :, ::-1])
    (src / "notes.txt").write_text("not an image")
    total = compact(src, dst, max_mp=0.5, quality=95, keep_below=20_000)

    assert sorted(p.name for p in dst.iterdir()) == ["big.jpg", "photo.jpg", "rgba.jpg", "small.png"]
    assert total == sum(p.stat().st_size for p in dst.iterdir())
    # Small files and JPEGs within the size limit are copied byte for byte (no second JPEG loss).
    assert (dst / "small.png").read_bytes() == (src / "small.png").read_bytes()
    assert (dst / "photo.jpg").read_bytes() == (src / "photo.jpg").read_bytes()
    # Big ones are shrunk by area averaging to the megapixel limit, aspect kept, alpha dropped.
    shrunk = load_rgb(dst / "big.jpg")
    assert shrunk.shape[0] * shrunk.shape[1] <= 0.5e6 and abs(shrunk.shape[1] / shrunk.shape[0] - 4 / 3) < 0.01
    reference = cv2.resize(big, (shrunk.shape[1], shrunk.shape[0]), interpolation=cv2.INTER_AREA)
    assert _psnr(shrunk, reference) > 35
    rgb = load_rgb(dst / "rgba.jpg")
    assert rgb.shape[2] == 3 and rgb.shape[0] * rgb.shape[1] <= 0.5e6
    assert (dst / "big.jpg").stat().st_size < (src / "big.png").stat().st_size


def test_compact_corpus_keeps_a_lossy_file_that_would_grow(tmp_path):
    compact = _script("compact_corpus").compact
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    # A strongly compressed JPEG above the megapixel limit: re-encoding at quality 95 would grow it.
    cv2.imwrite(str(src / "low.jpg"), textured_image(5, height=800, width=900)[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 20])
    # A PNG of the same stem does not overwrite it.
    write_image(src / "low.png", Image(pixels=textured_image(6, height=800, width=900)))
    compact(src, dst, max_mp=0.5, quality=95, keep_below=1000)
    assert sorted(p.name for p in dst.iterdir()) == ["low.jpg", "low.png.jpg"]
    assert (dst / "low.jpg").read_bytes() == (src / "low.jpg").read_bytes()


def test_compact_corpus_tiles_keep_the_original_resolution(tmp_path):
    module = _script("compact_corpus")
    src, dst = tmp_path / "src", tmp_path / "dst"
    big = textured_image(7, height=1000, width=1500)  # 1.5 MP of texture
    write_image(src / "big.png", Image(pixels=big))
    write_image(src / "fits.png", Image(pixels=textured_image(8, height=500, width=600)))
    # A strongly compressed JPEG whose tiles at quality 95 would take more room than it does whole.
    cv2.imwrite(str(src / "low.jpg"), textured_image(9, height=800, width=900)[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 20])
    total = module.compact(src, dst, max_mp=0.4, quality=95, keep_below=1000, tiles=3)

    assert sorted(p.name for p in dst.iterdir()) == ["big__tile0.jpg", "big__tile1.jpg", "big__tile2.jpg",
                                                      "fits.jpg", "low.jpg"]
    assert total == sum(p.stat().st_size for p in dst.iterdir())
    assert (dst / "low.jpg").read_bytes() == (src / "low.jpg").read_bytes()
    assert load_rgb(dst / "fits.jpg").shape == (500, 600, 3)  # within the limit: re-encoded, not cut
    # Each tile is a window of the original pixels (not shrunk), ≤ 0.4 MP, with the picture's aspect.
    windows = module._windows(1000, 1500, 0.4, 3)
    assert len(windows) == 3 and len({(y, x) for y, x, _, _ in windows}) == 3
    for index, (y, x, h, w) in enumerate(windows):
        assert h * w <= 0.4e6 and abs(w / h - 1.5) < 0.01
        assert 0 <= y <= 1000 - h and 0 <= x <= 1500 - w
        assert _psnr(load_rgb(dst / f"big__tile{index}.jpg"), big[y:y + h, x:x + w]) > 35
    # Spread over the picture: the first window at the top left, the last at the bottom right.
    assert windows[0][:2] == (0, 0) and windows[-1][0] + windows[-1][2] == 1000 and windows[-1][1] + windows[-1][3] == 1500
    (y, x, h, w), = module._windows(1000, 1500, 0.4, 1)  # one window: the centre
    assert abs(y + h / 2 - 500) <= 1 and abs(x + w / 2 - 750) <= 1


def test_timed_finetune_plan():
    plan = _script("timed_finetune").plan
    more, g_total, joint = plan(30.0, 400.0, probe=600, adversarial=0.15, d_pretrain=200, safety=0.95, joint_cost=1.5)
    # 11400 L1-step equivalents; 15 % of them (1710) buy 1140 D + joint steps, 200 of them D pretraining.
    assert more == 11400 and joint == 940 and g_total == 600 + 11400 - 1710
    assert plan(30.0, 400.0, probe=600, adversarial=0.15, d_pretrain=200, safety=0.95, joint_cost=1.0)[1:] == (10290, 1510)
    # Too little time for a joint phase: all new steps are L1 steps.
    more, g_total, joint = plan(2.0, 100.0, probe=50, adversarial=0.15, d_pretrain=200, safety=1.0)
    assert (more, g_total, joint) == (200, 250, 0)
    assert plan(5.0, -10.0, probe=50, adversarial=0.15, d_pretrain=200, safety=1.0) == (0, 50, 0)


def test_timed_finetune_end_to_end(image_folder, tmp_path):
    out, export = tmp_path / "run", tmp_path / "export"
    cmd = [sys.executable, str(ROOT / "scripts/timed_finetune.py"), "--budget-s", "300", "--reserve-s", "3", "--max-steps", "40",
           "--probe-steps", "6", "--adversarial", "0.5", "--d-pretrain", "2", "--out", str(out), "--export", str(export),
           "--", "--train-data", str(image_folder / "train"), "--val-data", str(image_folder / "val"),
           *[a for item in TINY for a in ("--set", item)]]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "probe:" in result.stdout and "exported" in result.stdout
    records = [json.loads(line) for line in (export / "metrics.jsonl").read_text().splitlines()]
    assert 6 < max(r["step"] for r in records) <= 41, "the run went on past its probe, within --max-steps"
    config = json.loads((export / "config.json").read_text())
    assert config["stop_after"] == 0 and config["g_pretrain_steps"] >= 6
    for name in ("last.safetensors", "pretrain.safetensors"):
        with safe_open(export / name, "pt") as handle:
            assert all(handle.get_tensor(k).dtype.is_floating_point for k in handle.keys())
            assert {str(handle.get_tensor(k).dtype) for k in handle.keys()} == {"torch.float16"}


@pytest.mark.parametrize(("args", "message"), [(["--budget-s", "100"], "probe failed"),
                                             (["--budget-s", "10"], "leaves nothing after --reserve-s 45"), ([], "")])
def test_timed_finetune_rejects_a_failed_probe(tmp_path, args, message):
    cmd = [sys.executable, str(ROOT / "scripts/timed_finetune.py"), *args, "--out", str(tmp_path / "run"), "--",
           "--train-data", str(tmp_path / "missing")]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode != 0 and message in result.stderr


def test_average_weights(tmp_path):
    import torch

    from vidrestore.nets.unet import UNet
    from vidrestore.weights import load_generator, save_generator

    average = _script("average_weights").average
    tiny = dict(base_channels=4, channel_multipliers=(1, 2), encoder_blocks=(1, 1), decoder_blocks=(1, 1), middle_blocks=1)
    torch.manual_seed(0)
    first, second = UNet(**tiny), UNet(**tiny)
    save_generator(tmp_path / "a.safetensors", first, tiny, {"step": "10"})
    save_generator(tmp_path / "b.safetensors", second, tiny, {"step": "20"})
    average(tmp_path / "a.safetensors", tmp_path / "b.safetensors", 0.25, tmp_path / "soup.safetensors")
    soup, metadata = load_generator(tmp_path / "soup.safetensors")
    for key, value in soup.state_dict().items():
        expected = 0.75 * first.state_dict()[key] + 0.25 * second.state_dict()[key]
        assert torch.allclose(value, expected, atol=1e-6), key
    assert "0.75 ×" in metadata["soup"] and "(step 20)" in metadata["soup"] and metadata["step"] == "20"
    # A shallower A grows into B first: its missing block is an identity, so it averages as one.
    deeper = tiny | dict(middle_blocks=2)
    grown = UNet(**deeper)
    save_generator(tmp_path / "c.safetensors", grown, deeper)
    average(tmp_path / "a.safetensors", tmp_path / "c.safetensors", 0.5, tmp_path / "grown.safetensors")
    mixed, _ = load_generator(tmp_path / "grown.safetensors")
    for key, value in mixed.state_dict().items():
        own = first.state_dict().get(key)
        if key.endswith("middle.1.scale"):
            own = torch.zeros_like(value)  # the added block starts with residual scale 0
        elif own is None:  # the added block's convolutions: A's grown copy takes B's (scale 0 makes them unused)
            own = grown.state_dict()[key]
        assert torch.allclose(value, 0.5 * own + 0.5 * grown.state_dict()[key], atol=1e-6), key
    # A narrower A widens into B first (new channels nothing reads), so the soup of A with a B
    # grown from A computes A's function when B has not moved from its start.
    wider = tiny | dict(base_channels=8)
    widened = UNet(**wider)
    widened.load_grown(first.state_dict())
    save_generator(tmp_path / "d.safetensors", widened, wider)
    average(tmp_path / "a.safetensors", tmp_path / "d.safetensors", 0.5, tmp_path / "wide.safetensors")
    wide_soup, _ = load_generator(tmp_path / "wide.safetensors")
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(wide_soup.float()(x), first(x), rtol=0, atol=1e-6)
    # A wider A cannot shrink into B: refused.
    with pytest.raises(SystemExit, match="different networks"):
        average(tmp_path / "d.safetensors", tmp_path / "a.safetensors", 0.5, tmp_path / "bad.safetensors")
    with pytest.raises(SystemExit, match="alpha"):
        average(tmp_path / "a.safetensors", tmp_path / "b.safetensors", 1.5, tmp_path / "bad.safetensors")
