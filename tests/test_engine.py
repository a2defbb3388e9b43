"""Tests for vidrestore.engine: tiling invariants, tiled == untiled, conversions, threads, errors.

Real computation on CPU with a small random UNet whose tail is perturbed so it is not the
identity; frames are small so the suite stays fast.
"""

from __future__ import annotations

import math
import os
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from vidrestore import Restorer
from vidrestore.engine import shrink_corrections, tile_apply
from vidrestore.errors import ModelError
from vidrestore.io.convert import from_float, rgb_to_gray, to_float
from vidrestore.nets.unet import ResBlock, UNet
from vidrestore.weights import load_generator, save_generator

MODEL_CONFIG = {"base_channels": 8}


def random_unet(seed: int = 0) -> UNet:
    """A small UNet (size_multiple 8) whose zero-initialised tail is perturbed: output != input."""
    torch.manual_seed(seed)
    model = UNet(**MODEL_CONFIG)
    with torch.no_grad():
        model.tail.weight.normal_(0.0, 0.01)
        model.tail.bias.normal_(0.0, 0.01)
    return model


@pytest.fixture(scope="module")
def model() -> UNet:
    return random_unet()


@pytest.fixture(scope="module")
def restorer(model: UNet) -> Restorer:
    """fp32, small tiles so that the test frames are really tiled."""
    return Restorer(model, device="cpu", precision="fp32", tile=32, tile_overlap=8, batch_size=3)


def random_frames(shape: tuple[int, ...], dtype: type, seed: int = 0) -> np.ndarray:
    generator = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "u":
        return generator.integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)
    return generator.random(shape).astype(dtype)


# ------------------------------------------------------------------------------ tile_apply


@pytest.mark.parametrize(
    ("shape", "tile", "overlap", "alignment"),
    [
        ((1, 3, 150, 203), 64, 16, 1),
        ((2, 3, 150, 203), 64, 16, 8),  # padded to 152 × 208, tiles at multiples of 8
        ((2, 1, 30, 40), 64, 16, 1),  # smaller than a tile: one tile
        ((1, 3, 30, 130), 64, 16, 1),  # smaller than a tile in one direction only
        ((3, 2, 65, 129), 64, 0, 1),  # naive tiling, sizes one past a multiple
        ((1, 3, 100, 37), 32, 31, 1),  # stride 1: up to 32 tiles cover a pixel
        ((2, 3, 47, 53), 0, 0, 1),  # whole frames
    ],
)
def test_tile_apply_identity_returns_the_input(
    shape: tuple[int, ...], tile: int, overlap: int, alignment: int
) -> None:
    batch = torch.rand(shape, generator=torch.Generator().manual_seed(1))
    result = tile_apply(lambda tiles: tiles, batch, tile=tile, overlap=overlap, tiles_per_batch=5, alignment=alignment)
    assert result.shape == batch.shape and result.dtype == batch.dtype
    # Exact up to float32 rounding of the weighted sum (up to 32 tiles per pixel with stride 1).
    assert (result - batch).abs().max().item() <= 1e-5


def test_tile_apply_weights_sum_to_one_and_keep_dtype() -> None:
    batch = torch.zeros(2, 3, 150, 203, dtype=torch.float64)
    result = tile_apply(lambda tiles: torch.ones_like(tiles[:, :1]), batch, tile=64, overlap=16, tiles_per_batch=4)
    assert result.shape == (2, 1, 150, 203) and result.dtype == torch.float64
    assert (result - 1.0).abs().max().item() <= 1e-6


def test_tile_apply_blends_smoothly_between_tiles() -> None:
    """fn returns a different constant per tile: the blend must have no jumps larger than a ramp step."""
    counter = iter(range(10_000))

    def per_tile_constant(tiles: torch.Tensor) -> torch.Tensor:
        values = torch.tensor([float(next(counter) % 2) for _ in range(tiles.shape[0])])
        return values.view(-1, 1, 1, 1).expand_as(tiles).clone()

    result = tile_apply(per_tile_constant, torch.zeros(1, 1, 64, 400), tile=64, overlap=32, tiles_per_batch=1)
    # Tiles alternate 0, 1, 0, ...: a naive tiling would jump by 1 at each tile boundary.
    assert result.diff(dim=-1).abs().max().item() < 0.2
    assert result.min().item() >= 0.0 and result.max().item() <= 1.0


def test_tile_apply_bounds_the_stacks_passed_to_fn() -> None:
    """A large frame is never passed whole: every call gets <= tiles_per_batch tiles of <= tile pixels."""
    calls: list[tuple[int, ...]] = []

    def counting_identity(tiles: torch.Tensor) -> torch.Tensor:
        calls.append(tuple(tiles.shape))
        return tiles

    batch = torch.rand(1, 3, 1000, 1500, generator=torch.Generator().manual_seed(2))
    result = tile_apply(counting_identity, batch, tile=256, overlap=32, tiles_per_batch=3)
    rows, columns = math.ceil((1000 - 256) / 224) + 1, math.ceil((1500 - 256) / 224) + 1
    assert len(calls) == math.ceil(rows * columns / 3)
    assert max(shape[0] for shape in calls) == 3
    assert all(shape[2] <= 256 and shape[3] <= 256 for shape in calls)
    assert (result - batch).abs().max().item() <= 1e-6


def test_tile_apply_spreads_tiles_to_avoid_recomputation() -> None:
    """720p with 512-pixel tiles: 2 × 3 tiles shrunk to fit, not 512² tiles that mostly overlap."""
    shapes: list[tuple[int, ...]] = []

    def recording_identity(tiles: torch.Tensor) -> torch.Tensor:
        shapes.append(tuple(tiles.shape))
        return tiles

    batch = torch.rand(1, 1, 720, 1280)
    result = tile_apply(recording_identity, batch, tile=512, overlap=32, tiles_per_batch=1, alignment=16)
    assert len(shapes) == 6
    assert all(h <= 512 and w <= 512 and h % 16 == 0 and w % 16 == 0 for _, _, h, w in shapes)
    assert sum(h * w for _, _, h, w in shapes) < 1.15 * 720 * 1280
    assert (result - batch).abs().max().item() <= 1e-5


def test_tile_apply_shares_forward_passes_across_frames() -> None:
    calls: list[int] = []

    def counting_identity(tiles: torch.Tensor) -> torch.Tensor:
        calls.append(tiles.shape[0])
        return tiles

    batch = torch.rand(2, 3, 100, 100)  # 2 × 2 tiles per frame
    result = tile_apply(counting_identity, batch, tile=64, overlap=16, tiles_per_batch=3)
    assert calls == [3, 3, 2]  # the second call holds tiles of both frames
    assert (result - batch).abs().max().item() <= 1e-6


def test_tile_apply_propagates_errors_from_fn() -> None:
    def failing(tiles: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("tile failed on purpose")

    with pytest.raises(RuntimeError, match="tile failed on purpose"):
        tile_apply(failing, torch.rand(1, 3, 100, 100), tile=64, overlap=16, tiles_per_batch=2)


@pytest.mark.parametrize(
    ("batch", "options", "message"),
    [
        (torch.rand(1, 3, 50, 50), {"tile": 32, "overlap": 32, "tiles_per_batch": 1}, "overlap"),
        (torch.rand(1, 3, 50, 50), {"tile": 32, "overlap": 8, "tiles_per_batch": 0}, "tiles_per_batch"),
        (torch.rand(1, 3, 50, 50), {"tile": 36, "overlap": 8, "tiles_per_batch": 1, "alignment": 8}, "multiples"),
        (torch.zeros(1, 3, 50, 50, dtype=torch.uint8), {"tile": 32, "overlap": 8, "tiles_per_batch": 1}, "float"),
        (torch.rand(3, 50, 50), {"tile": 32, "overlap": 8, "tiles_per_batch": 1}, r"\(N, C, H, W\)"),
    ],
)
def test_tile_apply_rejects_bad_arguments(batch: torch.Tensor, options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tile_apply(lambda tiles: tiles, batch, **options)


def test_tile_apply_rejects_fn_that_changes_the_size() -> None:
    with pytest.raises(ValueError, match="fn must map"):
        tile_apply(lambda tiles: tiles[..., :-1], torch.rand(1, 3, 100, 100), tile=64, overlap=16, tiles_per_batch=2)


# ------------------------------------------------------------------------------ tiled vs whole


def test_tiled_restoration_matches_whole_frame(model: UNet) -> None:
    frames = torch.rand(2, 3, 150, 203, generator=torch.Generator().manual_seed(3))
    whole = Restorer(model, device="cpu", precision="fp32", tile=0).restore_tensor(frames)
    assert (whole - frames).abs().mean().item() > 1e-2  # the model really changes the frames

    blended = Restorer(model, device="cpu", precision="fp32", tile=64, tile_overlap=16).restore_tensor(frames)
    blended_error = (blended - whole).abs()
    assert blended_error.max().item() < 1e-2
    assert blended_error.mean().item() < 5e-4

    naive = Restorer(model, device="cpu", precision="fp32", tile=64, tile_overlap=0).restore_tensor(frames)
    naive_error = (naive - whole).abs()
    assert naive_error.max().item() > 5 * blended_error.max().item()
    assert naive_error.mean().item() > 5 * blended_error.mean().item()


def test_tiles_must_be_aligned_to_the_network(model: UNet) -> None:
    """The UNet folds 2×2 and downsamples: tiles at offsets that are not multiples of 8 disagree everywhere."""
    frames = torch.rand(1, 3, 150, 203, generator=torch.Generator().manual_seed(4))
    with torch.inference_mode():
        whole = model(frames)
        aligned = tile_apply(model, frames, tile=64, overlap=16, tiles_per_batch=4, alignment=model.size_multiple)
        misaligned = tile_apply(model, frames, tile=64, overlap=16, tiles_per_batch=4, alignment=1)
    assert (misaligned - whole).abs().max().item() > 5 * (aligned - whole).abs().max().item()


@pytest.mark.parametrize("precision", ["fp32", "auto"])
@pytest.mark.parametrize("tile", [0, 32])
def test_batch_equals_one_by_one_exactly(model: UNet, tile: int, precision: str) -> None:
    """A frame's result does not depend on the frames restored with it (video order independence)."""
    engine = Restorer(model, device="cpu", precision=precision, tile=tile, tile_overlap=8, batch_size=3)
    frames = torch.rand(5, 3, 40, 56, generator=torch.Generator().manual_seed(5))
    together = engine.restore_tensor(frames)
    alone = torch.cat([engine.restore_tensor(frames[index : index + 1]) for index in range(len(frames))])
    torch.testing.assert_close(together, alone, rtol=0, atol=0)
    reordered = engine.restore_tensor(frames[[4, 2, 0, 3, 1]])[[2, 4, 1, 3, 0]]
    torch.testing.assert_close(reordered, together, rtol=0, atol=0)


# ------------------------------------------------------------------------------ conversions


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float16, np.float64])
@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_numpy_round_trip_keeps_shape_and_dtype(restorer: Restorer, dtype: type, channels: int) -> None:
    frames = random_frames((2, 37, 45, channels), dtype)
    result = restorer(frames)
    assert result.shape == frames.shape and result.dtype == frames.dtype
    single = restorer(frames[1])
    assert single.shape == frames.shape[1:] and single.dtype == frames.dtype
    np.testing.assert_array_equal(single, result[1])  # a frame's result ignores its batch mates
    color_channels = 1 if channels <= 2 else 3
    if channels in (2, 4):
        np.testing.assert_array_equal(result[..., -1], frames[..., -1])  # alpha untouched
    assert not np.array_equal(result[..., :color_channels], frames[..., :color_channels])  # colour restored


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_integer_frames_round_like_from_float(restorer: Restorer, dtype: type) -> None:
    frames = random_frames((2, 37, 45, 3), dtype, seed=7)
    expected = from_float(restorer(to_float(frames)), dtype)
    np.testing.assert_array_equal(restorer(frames), expected)


def test_gray_is_restored_as_rgb_and_returned_as_luma(restorer: Restorer) -> None:
    gray = random_frames((2, 37, 45, 1), np.uint8, seed=8)
    result = restorer(gray)
    assert result.shape == gray.shape
    restored_rgb = restorer(to_float(np.repeat(gray, 3, axis=3)))
    expected = np.stack([from_float(rgb_to_gray(frame), np.uint8) for frame in restored_rgb])
    assert np.abs(result.astype(int) - expected.astype(int)).max() <= 1


def test_torch_float_frames_keep_dtype_and_device(restorer: Restorer) -> None:
    frames = torch.rand(2, 3, 37, 45, generator=torch.Generator().manual_seed(9))
    result = restorer(frames)
    assert result.shape == frames.shape and result.dtype == torch.float32 and result.device == frames.device
    torch.testing.assert_close(result, restorer.restore_tensor(frames), rtol=0, atol=0)
    half = restorer(frames.half())
    assert half.dtype == torch.float16
    assert (half.float() - result).abs().max().item() < 1e-2
    single = restorer(frames[0])
    assert single.shape == frames.shape[1:]
    torch.testing.assert_close(single, result[0], rtol=0, atol=0)


@pytest.mark.parametrize("dtype, torch_dtype", [(np.uint8, torch.uint8), (np.uint16, torch.uint16)])
def test_torch_integer_frames_match_numpy(restorer: Restorer, dtype, torch_dtype) -> None:
    """uint16 tensors (16-bit video decoded to torch) were refused though numpy uint16 was taken."""
    pixels = random_frames((2, 37, 45, 4), dtype, seed=10)
    result = restorer(torch.from_numpy(pixels).permute(0, 3, 1, 2))
    assert result.dtype == torch_dtype and result.shape == (2, 4, 37, 45)
    np.testing.assert_array_equal(result.permute(0, 2, 3, 1).numpy(), restorer(pixels))


# ------------------------------------------------------------------------------ construction


def test_restorer_loads_a_safetensors_file(model: UNet, restorer: Restorer, tmp_path) -> None:
    path = tmp_path / "generator.safetensors"
    save_generator(path, model, MODEL_CONFIG)
    from_file = Restorer(path, device="cpu", precision="fp32", tile=32, tile_overlap=8, batch_size=3)
    frames = torch.rand(1, 3, 40, 40, generator=torch.Generator().manual_seed(11))
    torch.testing.assert_close(from_file.restore_tensor(frames), restorer.restore_tensor(frames))
    assert from_file.info["model"]["arch"] == "unet"


def test_saved_weights_are_byte_reproducible(model: UNet, tmp_path) -> None:
    """safetensors writes metadata in hash order; ours are sorted, so one model has one checksum."""
    extra = {key: key * 3 for key in ("step", "data", "notes", "zeta", "alpha", "hardware")}
    blobs = set()
    for attempt in range(4):
        path = tmp_path / f"g{attempt}.safetensors"
        save_generator(path, model, MODEL_CONFIG, extra)
        blobs.add(path.read_bytes())
    assert len(blobs) == 1
    reloaded, metadata = load_generator(path)
    assert metadata["hardware"] == "hardwarehardwarehardware"
    assert all(torch.equal(a, b) for a, b in zip(reloaded.state_dict().values(), model.state_dict().values()))
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask, "weights to share get the usual permissions, not 0600"


def test_restorer_leaves_the_callers_module_alone() -> None:
    module = random_unet(seed=1).train()
    Restorer(module, device="cpu")
    assert module.training
    assert all(parameter.requires_grad for parameter in module.parameters())
    assert module.head.weight.is_contiguous()
    scales = [block.scale.clone() for block in module.modules() if isinstance(block, ResBlock)]
    restorer = Restorer(module, device="cpu", precision="fp32", tile=0)
    # The restorer folds its own copy's residual scales into the convs, never the caller's.
    assert all(torch.equal(block.scale, scale) and not block.folded
               for block, scale in zip((b for b in module.modules() if isinstance(b, ResBlock)), scales))
    assert all(block.folded for block in restorer._model.modules() if isinstance(block, ResBlock))
    frames = torch.rand(1, 3, 48, 40, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = module.eval()(frames)
        assert not torch.allclose(expected, frames, atol=1e-3)
        torch.testing.assert_close(restorer._forward(frames), expected, atol=1e-5, rtol=0)


def test_info_reports_device_precision_and_tiling(model: UNet) -> None:
    info = Restorer(model, device="cpu", precision="fp32", tile=60, tile_overlap=10).info
    assert info["device"] == "cpu" and info["dtype"] == "float32"
    assert (info["tile"], info["tile_overlap"], info["size_multiple"]) == (64, 16, 8)  # rounded up to 8
    assert info["model"]["source"] == "module UNet"
    with pytest.raises(ValueError, match=r"tile_overlap \(32\) must be smaller than tile \(8\).*tile of at least 40"):
        Restorer(model, device="cpu", precision="fp32", tile=7, tile_overlap=32)


def test_strength_blends_the_correction_with_the_input(model: UNet) -> None:
    frames = random_frames((2, 40, 52, 3), np.float32, seed=3)
    options = {"device": "cpu", "precision": "fp32", "tile": 32, "tile_overlap": 8}
    full = Restorer(model, **options)(frames)
    assert float(np.abs(full - frames).max()) > 1e-3  # the model does change the frames
    half = Restorer(model, strength=0.5, **options)
    np.testing.assert_allclose(half(frames), frames + 0.5 * (full - frames), atol=1e-6)
    pixels = random_frames((1, 40, 52, 4), np.uint8, seed=4)
    np.testing.assert_array_equal(Restorer(model, strength=0.0, **options)(pixels), pixels)
    assert half.info["strength"] == 0.5 and "strength=0.5" in repr(half)
    assert half.fingerprint != Restorer(model, **options).fingerprint  # resumed jobs do not mix strengths


class Exaggerate(torch.nn.Module):
    """Moves every pixel away from mid-gray: correction ``gain * (x - 0.5)``, RMS known by hand."""

    size_multiple = 1

    def __init__(self, gain: float) -> None:
        super().__init__()
        self.gain = gain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.gain * (x - 0.5)


def test_correction_floor_shrinks_each_frames_correction_by_its_energy() -> None:
    options = {"device": "cpu", "precision": "fp32", "tile": 0}
    flat = np.full((1, 16, 20, 3), 0.5, np.float32)
    flat[0, ::2, :, :] += 0.02  # correction 0.1 × 0.02 on half the rows: RMS 0.36 levels
    busy = np.zeros((1, 16, 20, 3), np.float32)
    busy[0, ::2] = 1.0  # x - 0.5 = ±0.5: correction RMS 0.1 × 0.5 × 255 = 12.75 levels
    frames = np.concatenate([flat, busy])
    model = Exaggerate(0.1)
    raw = Restorer(model, correction_floor=0, **options)(frames)
    np.testing.assert_allclose(raw, frames + 0.1 * (frames - 0.5), atol=1e-6)
    floored = Restorer(model, **options)  # the default floor: 1 level
    out = floored(frames)
    rms = np.sqrt(np.mean((raw - frames) ** 2, axis=(1, 2, 3))) * 255
    expected_gain = np.clip(1.0 - (1.0 / rms) ** 2, 0.0, None)
    assert expected_gain[0] == 0.0 and 0.99 < expected_gain[1] < 1.0
    np.testing.assert_array_equal(out[0], frames[0])  # barely changed: left exactly as it was
    np.testing.assert_allclose(out[1], frames[1] + expected_gain[1] * (raw[1] - frames[1]), atol=1e-6)
    for index in range(2):  # each frame on its own: the same as in the batch
        np.testing.assert_array_equal(floored(frames[index : index + 1])[0], out[index])
    strong = Restorer(model, correction_floor=10.0, strength=0.5, **options)(busy)
    gain = 1.0 - (10.0 / rms[1]) ** 2
    np.testing.assert_allclose(strong, busy + 0.5 * gain * (raw[1:] - busy), atol=1e-6)
    custom = Restorer(model, correction_floor=2.5, **options)
    assert custom.info["correction_floor"] == 2.5 and "correction_floor=2.5" in repr(custom)
    assert custom.fingerprint != floored.fingerprint  # resumed jobs do not mix floors


def test_shrink_corrections_on_raw_output_equals_the_engine_with_that_floor(model: UNet) -> None:
    """What benchmarks/correction_floor.py relies on: floors applied afterwards match the engine's."""
    frames = torch.from_numpy(random_frames((3, 3, 40, 52), np.float32, seed=5))
    options = {"device": "cpu", "precision": "fp32", "tile": 32, "tile_overlap": 8}
    raw = Restorer(model, correction_floor=0, **options).restore_tensor(frames)
    rms = ((raw - frames).square().mean(dim=(1, 2, 3)).sqrt() * 255).tolist()
    floor = float(np.median(rms))  # the two smaller corrections are dropped, the largest is shrunk
    expected = shrink_corrections(frames, raw, floor / 255)
    np.testing.assert_allclose(Restorer(model, correction_floor=floor, **options).restore_tensor(frames), expected,
                               atol=1e-6)
    assert not torch.equal(expected, raw)  # the floor did something, and raw itself was left as it was
    np.testing.assert_array_equal(shrink_corrections(frames, raw.clone(), floor / 255, inplace=True), expected)


# ------------------------------------------------------------------------------ threads


def test_concurrent_calls_match_sequential_calls(model: UNet) -> None:
    engine = Restorer(model, device="cpu", tile=32, tile_overlap=8)  # automatic precision
    inputs = [random_frames((2, 40, 52, 3), np.uint8, seed=seed) for seed in range(8)]
    sequential = [engine(frames) for frames in inputs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        concurrent = list(pool.map(engine, inputs))
    for expected, got in zip(sequential, concurrent):
        np.testing.assert_array_equal(got, expected)


# ------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("frames", "error", "message"),
    [
        (np.zeros((2, 8, 8, 3), np.int32), TypeError, "uint8, uint16, float16, float32 or float64"),
        (np.where(np.arange(3 * 8 * 8 * 3).reshape(3, 8, 8, 3) == 200, np.nan, 0.5).astype(np.float32), ValueError,
         r"frames \[1\] have NaN or infinite pixels"),
        (torch.full((2, 3, 8, 8), 0.5).index_put_((torch.tensor([0]),) * 4, torch.tensor(float("inf"))), ValueError,
         r"frames \[0\] have NaN"),
        (np.zeros((8, 8), np.uint8), ValueError, r"\(N, H, W, C\)"),
        (np.zeros((1, 8, 8, 5), np.uint8), ValueError, "C in"),
        (np.zeros((0, 8, 8, 3), np.uint8), ValueError, "empty"),
        (torch.zeros(1, 3, 8, 8, dtype=torch.int64), TypeError, "float dtype, uint8 or uint16"),
        (torch.zeros(1, 5, 8, 8), ValueError, r"\(N, C, H, W\)"),
        (torch.zeros(2, 1, 3, 8, 8), ValueError, r"\(N, C, H, W\)"),
        ([[0.0]], TypeError, "numpy array or a torch tensor"),
    ],
)
def test_bad_frames_raise_clear_errors(restorer: Restorer, frames: object, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        restorer(frames)


def test_huge_finite_values_are_not_taken_for_nan(restorer: Restorer) -> None:
    """The NaN check's quick sum overflows on huge finite floats; the pixels themselves decide."""
    frames = np.full((1, 16, 16, 3), 3e38, np.float32)
    assert restorer(frames).shape == frames.shape


def test_float64_beyond_float32_is_refused_not_returned_as_nan(restorer: Restorer) -> None:
    """1e300 is finite in float64 but infinite to the float32 model: every output pixel was NaN."""
    frames = np.full((2, 16, 16, 3), 0.5)
    frames[1, 3, 3, 0] = 1e300
    with pytest.raises(ValueError, match=r"frames \[1\] have NaN or infinite pixels \(as float32\)"):
        restorer(frames)
    with pytest.raises(ValueError, match=r"frames \[1\]"):
        restorer(torch.from_numpy(frames).permute(0, 3, 1, 2))


def test_nan_alpha_and_read_only_frames_are_fine(restorer: Restorer) -> None:
    """Only colour is checked for NaN (alpha is copied through); read-only arrays (decoded images
    often are) restore without torch's warning about non-writable memory."""
    frames = random_frames((1, 16, 16, 4), np.float32)
    frames[0, 3, 3, 3] = np.nan
    frames.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = restorer(frames)
    assert np.isnan(result[0, 3, 3, 3]) and np.isfinite(result[..., :3]).all()


def test_restore_tensor_wants_float_rgb(restorer: Restorer) -> None:
    with pytest.raises(ValueError, match=r"float \(N, 3, H, W\)"):
        restorer.restore_tensor(torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError, match=r"float \(N, 3, H, W\)"):
        restorer.restore_tensor(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"tile": 32, "tile_overlap": 32}, ValueError, "smaller than tile"),
        ({"tile_overlap": -1}, ValueError, "tile_overlap"),
        ({"tile": -5}, ValueError, r"tile 0: whole frames"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"threads": 0}, ValueError, "threads"),
        ({"precision": "fp16"}, ValueError, "fp16"),
        ({"tile": 32.0}, TypeError, "integers"),
        ({"strength": 1.5}, ValueError, "strength"),
        ({"strength": float("nan")}, ValueError, "strength"),
        ({"correction_floor": -1.0}, ValueError, "correction_floor"),
        ({"correction_floor": float("nan")}, ValueError, "correction_floor"),
        ({"correction_floor": float("inf")}, ValueError, "correction_floor"),
        ({"correction_floor": True}, ValueError, "correction_floor"),
    ],
)
def test_bad_options_raise_clear_errors(model: UNet, options: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        Restorer(model, device="cpu", **options)


def test_numbers_from_numpy_are_numbers(model: UNet) -> None:
    """Values computed with numpy were refused ("strength must be a number in [0, 1], got 0.5")."""
    engine = Restorer(model, device="cpu", precision="fp32", tile=np.int64(64), tile_overlap=np.int32(16),
                      batch_size=np.int64(3), strength=np.float32(0.5), correction_floor=np.int64(0))
    plain = Restorer(model, device="cpu", precision="fp32", tile=64, tile_overlap=16, batch_size=3, strength=0.5,
                     correction_floor=0)
    assert engine.info == plain.info and engine.fingerprint == plain.fingerprint
    with pytest.raises(ValueError, match="strength must be a number in \\[0, 1\\], got np.True_"):
        Restorer(model, device="cpu", strength=np.bool_(True))


def test_bad_models_raise_clear_errors(tmp_path) -> None:
    with pytest.raises(ModelError, match="not found"):
        Restorer(tmp_path / "missing.safetensors")
    with pytest.raises(ModelError, match="is a folder, not a model file"):
        Restorer(tmp_path)
    with pytest.raises(TypeError, match="nn.Module"):
        Restorer(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="RGB to RGB"):
        Restorer(UNet(base_channels=8, in_channels=1, out_channels=1))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_colour_under_transparent_pixels_does_not_reach_visible_ones(restorer: Restorer, dtype: type) -> None:
    """A cut-out's hidden colour (black or white under alpha 0) is invisible: the visible pixels
    must not depend on it (it put a halo of up to 111 levels on the edge), and it is kept as is."""
    top = np.iinfo(dtype).max
    colour = random_frames((1, 40, 48, 3), dtype)
    alpha = np.full((1, 40, 48, 1), top, dtype)
    alpha[:, :, 24:] = 0
    alpha[:, 30:, 20:24] = top // 2  # partly transparent: visible, restored as usual
    outputs = []
    for hidden in (0, top):
        frames = np.concatenate([colour, alpha], axis=-1)
        frames[:, :, 24:, :3] = hidden
        restored = restorer(frames)
        assert np.array_equal(restored[..., 3], alpha[..., 0])
        assert (restored[:, :, 24:, :3] == hidden).all(), "the hidden colour comes back as it was"
        outputs.append(restored[:, :, :24, :3])
    assert np.array_equal(outputs[0], outputs[1])
    assert not np.array_equal(outputs[0], colour[:, :, :24]), "the visible part is restored"


def test_hidden_colour_is_filled_whatever_the_tensor_layout(restorer: Restorer) -> None:
    """A rotated torch view keeps non-contiguous strides through clone(): the fill went into a copy."""
    colour = torch.from_numpy(random_frames((1, 40, 40, 3), np.float32)).permute(0, 3, 1, 2)
    alpha = torch.ones(1, 1, 40, 40)
    alpha[..., 20:] = 0
    outputs = []
    for hidden in (0.0, 1.0):
        frames = torch.cat([colour, alpha], dim=1)
        frames[:, :3, :, 20:] = hidden
        rotated = torch.rot90(frames, 1, (2, 3))
        assert not rotated.is_contiguous()
        outputs.append(restorer(rotated)[:, :3, 20:, :])  # the visible half, rotated
    assert torch.equal(outputs[0], outputs[1])


def test_float_alpha_specks_above_zero_count_as_hidden(restorer: Restorer) -> None:
    colour = random_frames((1, 32, 32, 3), np.float32)
    alpha = np.ones((1, 32, 32, 1), np.float32)
    alpha[:, :, 16:] = 1e-7
    outputs = []
    for hidden in (0.0, 1.0):
        frames = np.concatenate([colour, alpha], axis=-1)
        frames[:, :, 16:, :3] = hidden
        outputs.append(restorer(frames)[:, :, :16, :3])
    assert np.array_equal(outputs[0], outputs[1])
