"""The engine and training on a CUDA GPU (skipped on machines without one: CI has none).

Run on a GPU machine with ``python -m pytest -q tests/test_cuda.py``. The CPU suite covers the
same behaviour on the CPU; these check what only a GPU can show: dtypes and devices round-trip,
results agree with the CPU's, batching and tiling stay exact, and a training run resumes exactly.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from vidrestore import Restorer
from tests.conftest import textured_image
from tests.test_engine import random_unet
from tests.test_train import tiny_config

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    return np.stack([textured_image(seed, 200, 264) for seed in (1, 2, 3)])


@pytest.mark.parametrize("precision", ["fp32", "auto"])
def test_shipped_model_on_cuda_matches_the_cpu(frames: np.ndarray, precision: str) -> None:
    """The default model gives the CPU's fp32 result on the GPU: fp32 (TF32 convolutions) within
    a fraction of a level, the automatic precision (bf16) within about a level on average."""
    cpu = Restorer(device="cpu", precision="fp32")(frames).astype(np.float64)
    cuda = Restorer(device="cuda", precision=precision)(frames).astype(np.float64)
    error = np.abs(cuda - cpu)
    print(f"{precision}: mean {error.mean():.4f}, max {error.max():.0f} levels")
    assert error.mean() < (0.1 if precision == "fp32" else 1.0)
    assert error.max() <= (3 if precision == "fp32" else 24)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.uint16, torch.float32, torch.float16])
@pytest.mark.parametrize("where", ["cpu", "cuda"])
def test_torch_frames_keep_dtype_and_device(dtype: torch.dtype, where: str) -> None:
    engine = Restorer(random_unet(), device="cuda", precision="fp32", tile=32, tile_overlap=8, batch_size=3)
    reference = Restorer(random_unet(), device="cpu", precision="fp32", tile=32, tile_overlap=8, batch_size=3)
    generator = torch.Generator().manual_seed(0)
    if dtype.is_floating_point:
        batch = torch.rand(2, 4, 37, 45, generator=generator).to(dtype)
    else:
        top = 255 if dtype == torch.uint8 else 65535
        batch = torch.randint(0, top + 1, (2, 4, 37, 45), generator=generator, dtype=torch.int32).to(dtype)
    result = engine(batch.to(where))
    assert result.dtype == dtype and result.device.type == where and result.shape == batch.shape
    assert torch.equal(result[:, 3].cpu(), batch[:, 3])  # alpha untouched
    expected = reference(batch).to(torch.float64)
    error = (result.cpu().to(torch.float64) - expected).abs()
    if dtype.is_floating_point:  # TF32 convolutions on the GPU, float16 storage
        assert error.max().item() < 2e-3, f"max error {error.max().item()}"
    else:  # integers: TF32's relative error, and a value next to a rounding boundary may land a level away
        top = 255.0 if dtype == torch.uint8 else 65535.0
        assert error.max().item() <= max(1.0, 2e-3 * top), f"max error {error.max().item()} of {top}"


@pytest.mark.parametrize("tile", [0, 32])
def test_batch_equals_one_by_one_on_cuda(tile: int) -> None:
    """Video order independence holds on the GPU too: a frame's result ignores its batch mates."""
    engine = Restorer(random_unet(), device="cuda", precision="auto", tile=tile, tile_overlap=8, batch_size=3)
    batch = torch.rand(5, 3, 40, 56, generator=torch.Generator().manual_seed(5))
    together = engine.restore_tensor(batch)
    alone = torch.cat([engine.restore_tensor(batch[index : index + 1]) for index in range(len(batch))])
    torch.testing.assert_close(together, alone, rtol=0, atol=0)


def test_tiled_matches_whole_frame_on_cuda() -> None:
    batch = torch.rand(2, 3, 150, 203, generator=torch.Generator().manual_seed(3))
    model = random_unet()
    whole = Restorer(model, device="cuda", precision="fp32", tile=0).restore_tensor(batch)
    tiled = Restorer(model, device="cuda", precision="fp32", tile=64, tile_overlap=16).restore_tensor(batch)
    error = (tiled - whole).abs()
    assert error.max().item() < 1e-2 and error.mean().item() < 5e-4


@pytest.mark.skipif(os.environ.get("CUBLAS_WORKSPACE_CONFIG") not in (":4096:8", ":16:8"),
                    reason="deterministic cuBLAS needs CUBLAS_WORKSPACE_CONFIG=:4096:8 set before the process starts")
def test_training_on_cuda_resumes_exactly(image_folder, tmp_path) -> None:
    """Under deterministic algorithms a CUDA run stopped and resumed ends with the uninterrupted
    run's weights, bit for bit: the checkpoint carries everything (CUDA RNG included). Without
    them, cuDNN's backward passes are not bitwise repeatable at all, resumed or not."""
    from vidrestore.train.loop import train

    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        common = ["device=cuda", "precision=bf16", "steps=4", "d_pretrain_steps=2", "val_every=2",
                  "checkpoint_every=100"]
        straight = train(tiny_config(image_folder, tmp_path / "a", *common))
        first = train(tiny_config(image_folder, tmp_path / "b", *common, "stop_after=3"))
        assert first["step"] == 3 and first["interrupted"]
        second = train(tiny_config(image_folder, tmp_path / "b", *common), resume=True)
        assert straight["step"] == second["step"] == 6
    finally:
        torch.use_deterministic_algorithms(False)
    a = torch.load(tmp_path / "a/checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "b/checkpoint.pt", weights_only=True)
    worst = max((a[part][key].float() - b[part][key].float()).abs().max().item()
                for part in ("generator", "discriminator", "ema") for key in a[part])
    print(f"largest weight difference after resume: {worst:g}")
    assert worst == 0.0
