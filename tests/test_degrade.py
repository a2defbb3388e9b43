"""Numeric tests for vidrestore.degrade: kernels by their moments, noise by its statistics,
resamplers by their interpolation properties, codecs by error vs quality, and sampling by replay.

Images are small (≤ 128 px) so the whole file runs in seconds on a busy CPU.
"""

from __future__ import annotations

import dataclasses
import json
import math

import cv2
import numpy as np
import pytest

from vidrestore.degrade import DegradeConfig, Plan, apply_plan, apply_plan_clip, degrade, degrade_clip, sample_plan
from vidrestore.degrade import ops, video_ops
from vidrestore.degrade.sample import (
    BlurConfig,
    GaussianBlur,
    GaussianNoise,
    Jpeg,
    JpegConfig,
    MotionBlur,
    MotionBlurConfig,
    Resample,
)

CONFIG_KEYS = ("blur", "motion_blur", "resample", "sharpen", "noise", "temporal_noise", "chroma_bleed", "jpeg", "mpeg2",
               "h264")


# --------------------------------------------------------------------------- helpers
def natural_image(height: int = 96, width: int = 96, seed: int = 0) -> np.ndarray:
    """A photo-like float32 RGB test image in [0, 1]: smooth ramps, hard edges and seeded texture."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    ramps = np.stack([x / width, y / height, (x + y) / (width + height)], axis=-1)
    edges = np.zeros((height, width, 3), np.float32)
    edges[height // 4 : 3 * height // 4, width // 3 : 2 * width // 3] = (0.35, -0.25, 0.2)  # a box
    edges[(x - 0.6 * width) ** 2 + (y - 0.3 * height) ** 2 < (0.15 * width) ** 2] = (-0.3, 0.3, 0.1)  # a disc
    texture = cv2.GaussianBlur(rng.standard_normal((height, width, 3)).astype(np.float32), (0, 0), 1.0)
    image = 0.15 + 0.6 * ramps + edges + 0.08 * texture
    return np.clip(image, 0.0, 1.0).astype(np.float32)


def flat(value: float = 0.5, size: int = 128) -> np.ndarray:
    return np.full((size, size, 3), value, np.float32)


def kernel_moments(kernel: np.ndarray) -> tuple[float, float, np.ndarray]:
    """Centroid (x, y) and 2×2 covariance of a kernel's weights; x right, y down, centre at 0."""
    radius = kernel.shape[0] // 2
    y, x = np.mgrid[-radius : radius + 1, -radius : radius + 1].astype(np.float64)
    mx, my = float((kernel * x).sum()), float((kernel * y).sum())
    cxx = float((kernel * (x - mx) ** 2).sum())
    cyy = float((kernel * (y - my) ** 2).sum())
    cxy = float((kernel * (x - mx) * (y - my)).sum())
    return mx, my, np.array([[cxx, cxy], [cxy, cyy]])


def mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))


def luma_mse(a: np.ndarray, b: np.ndarray) -> float:
    """MSE of BT.601 luma: 4:2:0 codecs lose chroma detail at any quality, so quality shows in luma."""
    weights = np.array([0.299, 0.587, 0.114], np.float32)
    return mse(a @ weights, b @ weights)


def high_frequency_energy(image: np.ndarray) -> float:
    """Mean squared neighbour difference (gradient energy). Not the Laplacian: bilinear's
    piecewise-linear kinks spike second derivatives though its output is the blurrier one."""
    image = image.astype(np.float64)
    return float(np.mean(np.diff(image, axis=0) ** 2) + np.mean(np.diff(image, axis=1) ** 2))


def all_on_config(**overrides: object) -> DegradeConfig:
    """Every operator (temporal noise included) with probability 1."""
    data = {key: {"probability": 1.0} for key in CONFIG_KEYS}
    data.update(overrides)
    return DegradeConfig.from_dict(data)


# --------------------------------------------------------------------------- kernels
@pytest.mark.parametrize("sigma", [0.8, 1.5, 2.5])
def test_gaussian_kernel_sums_to_one_is_symmetric_and_has_the_asked_sigma(sigma: float) -> None:
    size = 2 * math.ceil(4 * sigma) + 1  # ±4σ: truncation changes the second moment by < 0.1 %
    kernel = ops.gaussian_kernel(size, sigma)
    assert kernel.shape == (size, size)
    assert kernel.sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(kernel, kernel.T, atol=1e-15)
    np.testing.assert_allclose(kernel, kernel[::-1, :], atol=1e-15)
    np.testing.assert_allclose(kernel, kernel[:, ::-1], atol=1e-15)
    mx, my, cov = kernel_moments(kernel)
    assert abs(mx) < 1e-12 and abs(my) < 1e-12
    assert math.sqrt(cov[0, 0]) == pytest.approx(sigma, rel=0.005)
    assert math.sqrt(cov[1, 1]) == pytest.approx(sigma, rel=0.005)
    assert abs(cov[0, 1]) < 1e-12
    assert kernel[size // 2, size // 2] == kernel.max()


@pytest.mark.parametrize("size", [0, 2, 4, -1])
def test_gaussian_kernel_rejects_even_or_non_positive_sizes(size: int) -> None:
    with pytest.raises(ValueError):
        ops.gaussian_kernel(size, 1.0)


@pytest.mark.parametrize("length", [5, 8, 12, 7.5])
@pytest.mark.parametrize("angle", [0, 30, 45, 60, 90])
def test_motion_kernel_principal_axis_and_extent(length: float, angle: float) -> None:
    kernel = ops.motion_kernel(length, angle)
    radius = math.ceil(length / 2)
    assert kernel.shape == (2 * radius + 1, 2 * radius + 1)
    assert kernel.shape[0] % 2 == 1
    assert kernel.sum() == pytest.approx(1.0, abs=1e-12)
    assert kernel.min() >= 0.0
    mx, my, cov = kernel_moments(kernel)
    assert abs(mx) < 1e-9 and abs(my) < 1e-9, "the segment is centred"
    eigenvalues, eigenvectors = np.linalg.eigh(cov)
    ex, ey = eigenvectors[:, 1]
    # Counter-clockwise from +x with y pointing down: a direction (cos a, -sin a) in (x, y).
    measured = math.degrees(math.atan2(-ey, ex)) % 180.0
    error = min(abs(measured - angle % 180.0), 180.0 - abs(measured - angle % 180.0))
    assert error < 3.0, f"principal axis at {measured:.2f}°, asked {angle}°"
    # A uniform segment of length L has variance L²/12 along its axis; the bilinear splat adds
    # well under a pixel of spread.
    extent = math.sqrt(12.0 * eigenvalues[1])
    assert extent == pytest.approx(length, abs=0.5)
    assert eigenvalues[0] < 0.25, "the kernel is a thin line, not a blob"


def test_motion_kernel_direction_is_counter_clockwise_with_y_down() -> None:
    kernel = ops.motion_kernel(6, 45)
    c = kernel.shape[0] // 2
    # 45° counter-clockwise points up-right on screen: weight in the top-right and bottom-left
    # quadrants (rows above the centre are smaller y), none in the other two.
    top_right, bottom_left = kernel[:c, c + 1 :].sum(), kernel[c + 1 :, :c].sum()
    top_left, bottom_right = kernel[:c, :c].sum(), kernel[c + 1 :, c + 1 :].sum()
    assert top_right > 0.3 and bottom_left > 0.3
    assert top_left == 0.0 and bottom_right == 0.0
    vertical = ops.motion_kernel(6, 90)
    centre = vertical.shape[0] // 2
    assert vertical[:, centre].sum() == pytest.approx(1.0, abs=1e-9)


def test_motion_length_zero_is_identity() -> None:
    image = natural_image(48, 64)
    kernel = ops.motion_kernel(0, 37)
    assert kernel.shape == (1, 1) and kernel[0, 0] == 1.0
    np.testing.assert_array_equal(ops.motion_blur(image, length=0, angle=37), image)


def test_motion_blur_smears_a_dot_along_its_angle() -> None:
    image = np.zeros((33, 33, 3), np.float32)
    image[16, 16] = 1.0
    out = ops.motion_blur(image, length=9, angle=0)[..., 0]
    assert np.count_nonzero(out[16]) >= 9
    assert np.count_nonzero(np.delete(out, 16, axis=0)) == 0, "horizontal blur leaves other rows black"


# --------------------------------------------------------------------------- blur
@pytest.mark.parametrize("value", [0.0, 0.37, 1.0])
def test_blur_of_a_constant_image_stays_constant(value: float) -> None:
    image = flat(value, 40)
    np.testing.assert_allclose(ops.gaussian_blur(image, kernel_size=13, sigma=3.0), image, atol=1e-6)
    np.testing.assert_allclose(ops.motion_blur(image, length=12, angle=30), image, atol=1e-6)


def test_blur_reduces_variance_of_noise() -> None:
    rng = np.random.default_rng(1)
    noise = (0.5 + 0.1 * rng.standard_normal((96, 96, 3))).astype(np.float32)
    base = noise.var()
    gaussian = ops.gaussian_blur(noise, kernel_size=7, sigma=1.5).var()
    motion = ops.motion_blur(noise, length=8, angle=30).var()
    # White noise through a kernel keeps sum(k²) of its variance: 1/(4πσ²) ≈ 0.035 for σ 1.5.
    assert gaussian < 0.1 * base
    assert motion < 0.3 * base
    stronger = ops.gaussian_blur(noise, kernel_size=13, sigma=3.0).var()
    assert stronger < gaussian


def test_blur_output_stays_in_range_and_type() -> None:
    image = natural_image(48, 48)
    for out in (ops.gaussian_blur(image, kernel_size=5, sigma=1.0), ops.motion_blur(image, length=4, angle=10)):
        assert out.dtype == np.float32 and out.min() >= 0.0 and out.max() <= 1.0


def test_ops_reject_non_float32_images() -> None:
    with pytest.raises(TypeError):
        ops.gaussian_blur(np.zeros((8, 8, 3), np.uint8), kernel_size=3, sigma=1.0)
    with pytest.raises(TypeError):
        ops.gaussian_noise(np.zeros((8, 8, 3), np.float64), mean=0.0, sigma=0.1, seed=0)


# --------------------------------------------------------------------------- noise
@pytest.mark.parametrize(("sigma", "mean"), [(0.01, 0.0), (0.05, 0.01), (0.12, -0.01)])
def test_gaussian_noise_statistics(sigma: float, mean: float) -> None:
    out = ops.gaussian_noise(flat(0.5), mean=mean, sigma=sigma, seed=3)
    assert out.std() == pytest.approx(sigma, rel=0.03)
    assert out.mean() == pytest.approx(0.5 + mean, abs=3 * sigma / math.sqrt(out.size) + 1e-6)
    # Per channel noise is independent when gray is off.
    corr = np.corrcoef(out[..., 0].ravel(), out[..., 1].ravel())[0, 1]
    assert abs(corr) < 0.05


def test_gaussian_noise_gray_is_shared_across_channels() -> None:
    out = ops.gaussian_noise(flat(0.5), mean=0.0, sigma=0.05, seed=4, gray=True)
    np.testing.assert_array_equal(out[..., 0], out[..., 1])
    np.testing.assert_array_equal(out[..., 0], out[..., 2])
    assert out.std() == pytest.approx(0.05, rel=0.03)


def test_gaussian_noise_sigma_zero_is_identity() -> None:
    image = natural_image(48, 64)
    np.testing.assert_array_equal(ops.gaussian_noise(image, mean=0.0, sigma=0.0, seed=5), image)


def test_gaussian_noise_replays_from_its_seed() -> None:
    image = natural_image(32, 32)
    a = ops.gaussian_noise(image, mean=0.0, sigma=0.05, seed=9)
    b = ops.gaussian_noise(image, mean=0.0, sigma=0.05, seed=9)
    c = ops.gaussian_noise(image, mean=0.0, sigma=0.05, seed=10)
    assert a.tobytes() == b.tobytes()
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("lam", [100.0, 400.0])
def test_poisson_noise_variance_is_level_over_lambda(lam: float) -> None:
    for level in (0.2, 0.6):
        out = ops.poisson_noise(flat(level), lam=lam, seed=6)
        assert out.var() == pytest.approx(level / lam, rel=0.05)
        assert out.mean() == pytest.approx(level, abs=0.002)


def test_poisson_noise_gray_is_shared_across_channels() -> None:
    out = ops.poisson_noise(flat(0.4), lam=200.0, seed=7, gray=True)
    np.testing.assert_allclose(out[..., 0], out[..., 1], atol=1e-6)
    np.testing.assert_allclose(out[..., 0], out[..., 2], atol=1e-6)
    assert out.var() == pytest.approx(0.4 / 200.0, rel=0.05)


@pytest.mark.parametrize("snr", [0.9, 0.97])
def test_salt_and_pepper_fraction_and_values(snr: float) -> None:
    image = flat(0.5)
    out = ops.salt_and_pepper(image, snr=snr, seed=8)
    changed = np.any(out != image, axis=-1)
    assert changed.mean() == pytest.approx(1.0 - snr, abs=0.01)
    values = out[changed]
    assert np.all((values == 0.0) | (values == 1.0))
    assert np.all(values == values[:, :1]), "a corrupted pixel is black or white in every channel"
    salt = np.all(values == 1.0, axis=-1).mean()
    assert salt == pytest.approx(0.5, abs=0.06)
    assert np.all(out[~changed] == 0.5)


def test_salt_and_pepper_snr_one_is_identity() -> None:
    image = natural_image(32, 32)
    np.testing.assert_array_equal(ops.salt_and_pepper(image, snr=1.0, seed=1), image)


# --------------------------------------------------------------------------- jpeg
def test_jpeg_error_grows_as_quality_drops() -> None:
    image = natural_image(96, 96)
    decoded = [ops.jpeg(image, quality=q) for q in (100, 90, 70, 50)]
    errors = [mse(d, image) for d in decoded]
    luma_errors = [luma_mse(d, image) for d in decoded]
    assert all(a < b for a, b in zip(errors, errors[1:])), errors
    assert all(a < b for a, b in zip(luma_errors, luma_errors[1:])), luma_errors
    # At 100 luma is near lossless (8-bit rounding alone is 1.3e-6); 4:2:0 chroma still costs.
    assert luma_errors[0] < 1e-5
    out = ops.jpeg(image, quality=70)
    assert out.dtype == np.float32 and out.shape == image.shape


def test_jpeg_is_deterministic() -> None:
    image = natural_image(48, 48)
    assert ops.jpeg(image, quality=60).tobytes() == ops.jpeg(image, quality=60).tobytes()


# --------------------------------------------------------------------------- resample
def test_resample_nearest_is_blocky_with_low_resolution_values() -> None:
    image = natural_image(64, 64)
    out = ops.resample(image, scale=4.0, down_mode="area", up_mode="nearest")
    small = cv2.resize(image, (16, 16), interpolation=cv2.INTER_AREA)
    blocks = out.reshape(16, 4, 16, 4, 3)
    # Every 4×4 block is one constant pixel: the value of the low-resolution pixel it came from.
    np.testing.assert_array_equal(blocks, np.broadcast_to(blocks[:, :1, :, :1], blocks.shape))
    np.testing.assert_array_equal(blocks[:, 0, :, 0], np.clip(small, 0, 1))
    # Non-integer scale: still only low-resolution values, and many repeated neighbours.
    out = ops.resample(image, scale=2.5, down_mode="bilinear", up_mode="nearest")
    small = cv2.resize(image, (round(64 / 2.5), round(64 / 2.5)), interpolation=cv2.INTER_LINEAR)
    assert set(map(tuple, out.reshape(-1, 3))) <= set(map(tuple, small.reshape(-1, 3)))
    repeated = np.all(out[:, 1:] == out[:, :-1], axis=-1).mean()
    assert repeated > 0.5


def _bilinear_neighbour_bounds(small: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Per output pixel, min and max over the 2×2 low-res neighbours (half-pixel centres, clamped)."""
    sh, sw = small.shape[:2]

    def neighbours(size_out: int, size_in: int) -> tuple[np.ndarray, np.ndarray]:
        src = (np.arange(size_out) + 0.5) * size_in / size_out - 0.5
        lo = np.clip(np.floor(src).astype(int), 0, size_in - 1)
        return lo, np.clip(lo + 1, 0, size_in - 1)

    y0, y1 = neighbours(height, sh)
    x0, x1 = neighbours(width, sw)
    corners = np.stack([small[np.ix_(ys, xs)] for ys in (y0, y1) for xs in (x0, x1)])
    return corners.min(axis=0), corners.max(axis=0)


def test_resample_bilinear_never_overshoots_its_neighbours() -> None:
    image = natural_image(64, 64, seed=2)
    out = ops.resample(image, scale=4.0, down_mode="nearest", up_mode="bilinear")
    small = cv2.resize(image, (16, 16), interpolation=cv2.INTER_NEAREST)
    lo, hi = _bilinear_neighbour_bounds(small, 64, 64)
    assert np.all(out >= lo - 1e-5) and np.all(out <= hi + 1e-5)


def test_resample_bicubic_overshoots_an_edge_and_is_sharper_than_bilinear() -> None:
    # A vertical step between two mid-grey levels, away from the [0, 1] clip.
    step = np.full((64, 64, 3), 0.3, np.float32)
    step[:, 32:] = 0.7
    bilinear = ops.resample(step, scale=4.0, down_mode="nearest", up_mode="bilinear")
    bicubic = ops.resample(step, scale=4.0, down_mode="nearest", up_mode="bicubic")
    assert bilinear.min() >= 0.3 - 1e-6 and bilinear.max() <= 0.7 + 1e-6
    assert bicubic.max() > 0.7 + 0.01 and bicubic.min() < 0.3 - 0.01, "bicubic ringing at the step"

    image = natural_image(96, 96, seed=3)
    energies = {
        mode: high_frequency_energy(ops.resample(image, scale=3.0, down_mode="area", up_mode=mode))
        for mode in ("bilinear", "bicubic")
    }
    assert energies["bicubic"] > 1.1 * energies["bilinear"], energies


def test_resample_scale_one_bilinear_is_identity() -> None:
    image = natural_image(40, 56)
    out = ops.resample(image, scale=1.0, down_mode="bilinear", up_mode="bilinear")
    np.testing.assert_allclose(out, image, atol=1e-6)


def test_resample_loses_detail_as_scale_grows() -> None:
    image = natural_image(96, 96)
    errors = [mse(ops.resample(image, scale=s, down_mode="area", up_mode="bicubic"), image) for s in (1.5, 2.5, 4.0)]
    assert errors[0] < errors[1] < errors[2], errors


def test_resample_rejects_bad_arguments() -> None:
    image = flat(0.5, 16)
    with pytest.raises(ValueError):
        ops.resample(image, scale=0.5)
    with pytest.raises(ValueError):
        ops.resample(image, scale=2.0, up_mode="area")
    with pytest.raises(ValueError):
        ops.resample(image, scale=2.0, down_mode="lanczos")


# --------------------------------------------------------------------------- h264
def moving_clip(height: int, width: int, count: int = 6) -> list[np.ndarray]:
    big = natural_image(height + 8, width + 8 + count, seed=5)
    return [np.ascontiguousarray(big[4 : 4 + height, i : i + width]) for i in range(count)]


@pytest.mark.parametrize(("height", "width"), [(48, 64), (47, 65)])
def test_h264_round_trip_keeps_count_and_size(height: int, width: int) -> None:
    clip = moving_clip(height, width)
    out = video_ops.h264(clip, crf=23, preset="ultrafast")
    assert len(out) == len(clip)
    for original, decoded in zip(clip, out):
        assert decoded.shape == original.shape and decoded.dtype == np.float32
        assert luma_mse(decoded, original) < 2e-4  # about 37 dB luma PSNR at CRF 23
    # Frames come back in order: each decoded frame is closest to its own source.
    for i, decoded in enumerate(out):
        assert int(np.argmin([mse(decoded, c) for c in clip])) == i


def test_h264_error_grows_with_crf() -> None:
    clip = moving_clip(48, 64)
    low = [luma_mse(a, b) for a, b in zip(video_ops.h264(clip, crf=18), clip)]
    high = [luma_mse(a, b) for a, b in zip(video_ops.h264(clip, crf=40), clip)]
    assert np.mean(high) > 3 * np.mean(low), (low, high)
    assert all(h > l for h, l in zip(high, low)), "every frame is worse at the higher CRF"
    rgb_low = np.mean([mse(a, b) for a, b in zip(video_ops.h264(clip, crf=18), clip)])
    rgb_high = np.mean([mse(a, b) for a, b in zip(video_ops.h264(clip, crf=40), clip)])
    assert rgb_high > rgb_low


def test_h264_is_deterministic() -> None:
    clip = moving_clip(32, 48, count=5)
    a = video_ops.h264(clip, crf=30, preset="veryfast")
    b = video_ops.h264(clip, crf=30, preset="veryfast")
    assert b"".join(f.tobytes() for f in a) == b"".join(f.tobytes() for f in b)


def test_h264_empty_clip_and_bad_crf() -> None:
    assert video_ops.h264([], crf=20) == []
    with pytest.raises(ValueError):
        video_ops.h264([flat(0.5, 16)], crf=60)


# --------------------------------------------------------------------------- temporal noise
def test_temporal_noise_sigma_follows_noise_sigmas() -> None:
    frames = [flat(0.5, 24) for _ in range(32)]
    params = {"sigma_min": 0.01, "sigma_max": 0.08, "period": 16.0, "phase": 0.7}
    out = video_ops.temporal_noise(frames, seed=11, **params)
    expected = video_ops.noise_sigmas(32, **params)
    measured = np.array([f.std() for f in out])
    assert np.corrcoef(measured, expected)[0, 1] > 0.9
    np.testing.assert_allclose(measured, expected, rtol=0.1)
    assert expected.min() == pytest.approx(0.01, abs=0.003) and expected.max() == pytest.approx(0.08, abs=0.003)
    assert not np.array_equal(out[0], out[16]), "noise is fresh every frame"


# --------------------------------------------------------------------------- sampling
def test_sample_plan_replays_and_differs_by_seed() -> None:
    config = DegradeConfig()
    assert sample_plan(config, 5) == sample_plan(config, 5)
    drawn = {sample_plan(config, seed).ops for seed in range(20)}  # the ops, not the seed they carry
    assert len(drawn) == 20


def test_degrade_is_byte_identical_for_a_seed_and_differs_across_seeds() -> None:
    image = natural_image(48, 48)
    outputs = []
    for seed in range(4):
        a, plan_a = degrade(image, DegradeConfig(), seed)
        b, plan_b = degrade(image, DegradeConfig(), seed)
        assert plan_a == plan_b
        assert a.tobytes() == b.tobytes()
        assert a.dtype == np.float32 and a.shape == image.shape and a.min() >= 0.0 and a.max() <= 1.0
        outputs.append(a.tobytes())
    assert len(set(outputs)) == len(outputs)


def test_every_default_plan_has_at_least_one_op() -> None:
    config = DegradeConfig()
    counts = [len(sample_plan(config, seed).ops) for seed in range(200)]
    assert min(counts) >= 1
    assert max(counts) >= 3, "independent draws sometimes stack several ops"


def test_min_ops_with_a_single_enabled_operator() -> None:
    data = {key: {"probability": 0.0} for key in CONFIG_KEYS}
    data["jpeg"] = {"probability": 0.2, "quality": [60, 70]}
    config = DegradeConfig.from_dict(data | {"min_ops": 1})
    for seed in range(200):
        plan = sample_plan(config, seed)
        assert len(plan.ops) == 1 and isinstance(plan.ops[0], Jpeg)


def test_min_ops_with_tiny_probabilities_still_adds_ops() -> None:
    config = DegradeConfig.from_dict({key: {"probability": 1e-9} for key in CONFIG_KEYS})
    names = set()
    for seed in range(200):
        plan = sample_plan(config, seed)
        assert len(plan.ops) == 1
        names.add(plan.ops[0].name)
    assert len(names) >= 5, f"the added op is drawn among all enabled ones, got {names}"
    config = DegradeConfig.from_dict({key: {"probability": 1e-9} for key in CONFIG_KEYS} | {"min_ops": 3})
    for seed in range(50):
        ops_ = sample_plan(config, seed).ops
        assert len(ops_) == 3 and len({op.name for op in ops_}) == 3
        positions = [config.order.index(CONFIG_KEY_OF_OP[op.name]) for op in ops_]
        assert positions == sorted(positions), "added ops are applied in config order"


CONFIG_KEY_OF_OP = {
    "gaussian_blur": "blur",
    "motion_blur": "motion_blur",
    "resample": "resample",
    "gaussian_noise": "noise",
    "poisson_noise": "noise",
    "salt_and_pepper": "noise",
    "temporal_noise": "temporal_noise",
    "jpeg": "jpeg",
    "h264": "h264",
    "sharpen": "sharpen",
    "chroma_bleed": "chroma_bleed",
    "mpeg2": "mpeg2",
}


def test_config_rejects_impossible_settings() -> None:
    with pytest.raises(ValueError):
        DegradeConfig.from_dict({key: {"probability": 0.0} for key in CONFIG_KEYS})
    with pytest.raises(ValueError):
        DegradeConfig(min_ops=0)
    with pytest.raises(ValueError):
        DegradeConfig(order=("blur", "vignette"))


@pytest.mark.parametrize("data, message", [
    ({"noise": {"probability": 2}}, "noise.probability must be a probability in [0, 1]"),
    ({"noise": {"probability": -1}}, "noise.probability"),
    ({"jpeg": {"quality": [0, 500]}}, "jpeg.quality must be two integers low,high with 1 <= low <= high <= 100"),
    ({"jpeg": {"quality": [90, 30]}}, "jpeg.quality"),
    ({"blur": {"kernel_size": [4, 4]}}, "blur.kernel_size"),
    ({"blur": {"sigma": [0.0, 1.0]}}, "blur.sigma"),
    ({"noise": {"gaussian_sigma": [0.0, 0.1]}}, "noise.gaussian_sigma"),
    ({"noise": {"kind_weights": [0, 0, 0]}}, "noise.kind_weights"),
    ({"resample": {"scale": [0.5, 2.0]}}, "resample.scale"),
    ({"resample": {"modes": ["lanczos"]}}, "resample.modes"),
    ({"h264": {"crf": [10, 60]}}, "h264.crf"),
    ({"h264": {"presets": ["fastest"]}}, "h264.presets"),
    ({"mpeg2": {"qscale": [0, 5]}}, "mpeg2.qscale"),
    ({"temporal_noise": {"period": [0.0, 8.0]}}, "temporal_noise.period"),
    ({"noise": {"probability": "high"}}, "noise.probability"),
    ({"noise": 5}, "noise must be a group of NoiseConfig fields"),
])
def test_config_values_are_checked_when_built_naming_the_key(data, message) -> None:
    """A value an operator would reject fails at once, not when a sample happens to draw it."""
    with pytest.raises(ValueError) as error:
        DegradeConfig.from_dict(data)
    assert message in str(error.value)


def test_overrides_are_checked_naming_the_key() -> None:
    from vidrestore.train.config import apply_overrides

    with pytest.raises(ValueError, match="noise.probability"):
        apply_overrides(DegradeConfig(), ["noise.probability=1.5"])
    with pytest.raises(ValueError, match="jpeg.quality"):
        apply_overrides(DegradeConfig(), ["jpeg.quality=90,30"])
    assert apply_overrides(DegradeConfig(), ["jpeg.quality=30,90"]).jpeg.quality == (30, 90)


def test_sampled_parameters_respect_configured_ranges() -> None:
    config = all_on_config()
    quality, sizes, lengths, angles = [], [], [], []
    for seed in range(300):
        for op in sample_plan(config, seed).ops:
            if isinstance(op, Jpeg):
                quality.append(op.quality)
            elif isinstance(op, GaussianBlur):
                sizes.append(op.kernel_size)
                assert 0.3 <= op.sigma <= max(0.3, min(3.0, op.kernel_size / 3.0)) + 1e-4
            elif isinstance(op, MotionBlur):
                lengths.append(op.length)
                angles.append(op.angle)
            elif isinstance(op, Resample):
                assert 1.2 - 1e-4 <= op.scale <= 4.0 + 1e-4
    assert len(quality) == 300 and min(quality) >= 50 and max(quality) <= 100
    assert set(sizes) == {3, 5, 7, 9, 11, 13}
    assert 0.0 <= min(lengths) and max(lengths) <= 12.0 and max(lengths) > 10.0
    assert 0.0 <= min(angles) and max(angles) <= 90.0 and max(angles) > 80.0

    narrow = dataclasses.replace(DegradeConfig(), jpeg=JpegConfig(probability=1.0, quality=(30, 32)))
    drawn = {op.quality for seed in range(200) for op in sample_plan(narrow, seed).ops if isinstance(op, Jpeg)}
    assert drawn == {30, 31, 32}, "both bounds are inclusive"
    blur = BlurConfig(probability=1.0, kernel_size=(4, 8), sigma=(0.5, 1.0))
    rng = np.random.default_rng(0)
    assert {blur.sample(rng).kernel_size for _ in range(100)} == {5, 7}
    motion = MotionBlurConfig(probability=1.0, length=(2.0, 3.0), angle=(10.0, 20.0))
    for _ in range(100):
        op = motion.sample(rng)
        assert 2.0 <= op.length <= 3.0 and 10.0 <= op.angle <= 20.0


def test_plan_json_round_trip_replays_byte_identically() -> None:
    image = natural_image(48, 48)
    clip = moving_clip(32, 32, count=3)
    config = all_on_config()
    for seed in range(6):
        plan = sample_plan(config, seed)
        assert [CONFIG_KEY_OF_OP[op.name] for op in plan.ops] == list(config.order)
        restored = Plan.from_dict(json.loads(json.dumps(plan.to_dict())))
        assert restored == plan
        assert apply_plan(image, restored).tobytes() == apply_plan(image, plan).tobytes()
        replayed, original = apply_plan_clip(clip, restored), apply_plan_clip(clip, plan)
        assert [f.tobytes() for f in replayed] == [f.tobytes() for f in original]
    assert "jpeg(quality=" in plan.describe()


def test_degrade_config_dict_round_trip_and_unknown_keys() -> None:
    config = DegradeConfig(jpeg=JpegConfig(probability=0.9, quality=(40, 60)), min_ops=2)
    restored = DegradeConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert restored == config
    assert restored.jpeg.quality == (40, 60) and isinstance(restored.order, tuple)
    with pytest.raises(ValueError, match="vignette"):
        DegradeConfig.from_dict({"vignette": {"probability": 1.0}})
    with pytest.raises(ValueError, match="qualty"):
        DegradeConfig.from_dict({"jpeg": {"qualty": [10, 20]}})


def test_plan_applies_ops_in_order() -> None:
    image = natural_image(48, 48)
    blur, noise = GaussianBlur(kernel_size=5, sigma=1.0), GaussianNoise(mean=0.0, sigma=0.05, gray=False, seed=1)
    out = apply_plan(image, Plan(ops=(blur, noise), seed=0))
    manual = ops.gaussian_noise(ops.gaussian_blur(image, kernel_size=5, sigma=1.0), mean=0.0, sigma=0.05, seed=1)
    assert out.tobytes() == manual.tobytes()


# --------------------------------------------------------------------------- clips
def test_clip_shares_blur_and_resample_parameters() -> None:
    frame = natural_image(48, 48)
    static = [frame.copy() for _ in range(4)]
    plan = Plan(
        ops=(
            GaussianBlur(kernel_size=7, sigma=1.3),
            MotionBlur(length=5.0, angle=20.0),
            Resample(scale=2.2, down_mode="area", up_mode="bicubic"),
            Jpeg(quality=60),
        ),
        seed=0,
    )
    out = apply_plan_clip(static, plan)
    single = apply_plan(frame, plan)
    assert mse(single, frame) > 1e-4
    for degraded in out:
        assert degraded.tobytes() == single.tobytes()


def test_clip_noise_is_fresh_per_frame_with_equal_sigma() -> None:
    static = [flat(0.5, 64) for _ in range(4)]
    plan = Plan(ops=(GaussianNoise(mean=0.0, sigma=0.04, gray=False, seed=2),), seed=0)
    out = apply_plan_clip(static, plan)
    for degraded in out:
        assert degraded.std() == pytest.approx(0.04, rel=0.05)
    for a, b in zip(out, out[1:]):
        # Independent draws: the difference of two frames has σ√2.
        assert (a - b).std() == pytest.approx(0.04 * math.sqrt(2.0), rel=0.05)
    assert out[0].tobytes() == apply_plan(static[0], plan).tobytes(), "frame 0 matches the still-image result"


def test_degrade_clip_replays() -> None:
    clip = moving_clip(32, 32, count=4)
    config = all_on_config()
    a, plan_a = degrade_clip(clip, config, 3)
    b, plan_b = degrade_clip(clip, config, 3)
    assert plan_a == plan_b
    assert [f.tobytes() for f in a] == [f.tobytes() for f in b]
    assert len(a) == 4 and all(f.shape == clip[0].shape and f.dtype == np.float32 for f in a)


# --------------------------------------------------------------------------- old-video operators
def test_sharpen_adds_halos_and_zero_amount_is_identity() -> None:
    image = natural_image()
    assert np.array_equal(ops.sharpen(image, amount=0.0, sigma=1.0), image)
    sharp = ops.sharpen(image, amount=1.5, sigma=1.2)
    laplacian = lambda x: np.abs(cv2.Laplacian(x, cv2.CV_32F)).mean()  # noqa: E731
    assert laplacian(sharp) > 1.5 * laplacian(image)
    step = np.zeros((16, 32, 3), np.float32)
    step[:, 16:] = 0.5
    row = ops.sharpen(step, amount=1.0, sigma=1.5)[8, :, 0]
    assert row[13:16].min() < 0.0 + 1e-6 and row[16:19].max() > 0.55  # undershoot (clipped) and overshoot
    with pytest.raises(ValueError):
        ops.sharpen(image, amount=-1.0, sigma=1.0)


def test_chroma_bleed_keeps_luma_and_smears_colour() -> None:
    image = natural_image()
    out = ops.chroma_bleed(image, horizontal=4, vertical=2, shift=1.5)
    luma = lambda x: x @ np.float32([0.299, 0.587, 0.114])  # noqa: E731
    inside = (image > 0.05).all(-1) & (image < 0.95).all(-1) & (out > 0.0).all(-1) & (out < 1.0).all(-1)
    assert np.abs(luma(out) - luma(image))[inside].max() < 1e-4  # only chroma changed (where nothing clipped)
    chroma = lambda x: x - luma(x)[..., None]  # noqa: E731
    detail = lambda x: np.abs(np.diff(chroma(x), axis=1)).mean()  # noqa: E731
    assert detail(out) < 0.7 * detail(image)
    assert np.abs(ops.chroma_bleed(image, horizontal=1, vertical=1, shift=0.0) - image).max() < 1e-5
    with pytest.raises(ValueError):
        ops.chroma_bleed(image[..., 0], horizontal=2, vertical=1, shift=0.0)


def test_mpeg2_round_trip_sizes_determinism_and_quantiser() -> None:
    clip = moving_clip(45, 70, count=5)
    out = video_ops.mpeg2(clip, qscale=6)
    assert len(out) == 5 and all(f.shape == clip[0].shape and f.dtype == np.float32 for f in out)
    assert [f.tobytes() for f in out] == [f.tobytes() for f in video_ops.mpeg2(clip, qscale=6)]
    big = moving_clip(96, 128, count=6)
    errors = [np.mean([mse(a, b) for a, b in zip(video_ops.mpeg2(big, qscale=q), big)]) for q in (2, 8, 24)]
    assert 0 < errors[0] < errors[1] < errors[2] and errors[2] > 2 * errors[0]
    with pytest.raises(ValueError):
        video_ops.mpeg2(clip, qscale=40)


def test_new_operators_leave_the_first_release_plans_as_they_were() -> None:
    # Plans of the default config, as the first release drew them (benchmark sets and training
    # streams are seeded with these).
    golden = {
        0: "resample(scale=2.8881, down_mode=bicubic, up_mode=bilinear), salt_and_pepper(snr=0.95013)",
        1: "resample(scale=1.964, down_mode=bicubic, up_mode=bilinear), jpeg(quality=54)",
        10000: "gaussian_noise(mean=-0.00558, sigma=0.01124, gray=False)",
        10007: "motion_blur(length=0.27, angle=57.633), resample(scale=3.764, down_mode=bilinear, up_mode=bilinear), "
               "h264(crf=36, preset=ultrafast)",
    }
    assert {seed: sample_plan(DegradeConfig(), seed).describe() for seed in golden} == golden
    enabled = DegradeConfig.from_dict({"sharpen": {"probability": 0.5}, "chroma_bleed": {"probability": 0.5},
                                       "mpeg2": {"probability": 0.5}})
    new, seen, same = {"sharpen", "chroma_bleed", "mpeg2"}, set(), 0
    for seed in range(200):
        with_new, without = sample_plan(enabled, seed).ops, sample_plan(DegradeConfig(), seed).ops
        first_release = tuple(op for op in with_new if op.name not in new)
        # Unchanged, except where nothing was drawn and min_ops had to add one operator.
        assert first_release == without or len(without) == 1
        same += first_release == without
        seen |= {op.name for op in with_new} & new
    assert seen == new and same >= 170  # about 5 % of seeds draw no first-release operator
