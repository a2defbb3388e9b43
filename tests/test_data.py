"""Tests for vidrestore.data: media discovery, pair/clip datasets as pure functions of
(seed, epoch, index), crops that really come from the sources, and the synthetic camera pan.

Every source is a few dozen pixels wide and written into a temporary folder.
"""

from __future__ import annotations

import multiprocessing
import os
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image as PillowImage
from torch.utils.data import DataLoader

from vidrestore.data import ClipDataset, PairDataset, list_media
from vidrestore.degrade import DegradeConfig, apply_plan
from vidrestore.io import Image, VideoWriter, write_image

VIDEO_FRAMES = 12
VIDEO_STEP = 12  # grey levels added per frame, so a frame's index shows in its pixels


def photo(height: int, width: int, seed: int) -> np.ndarray:
    """uint8 RGB (height, width, 3): ramps plus smooth seeded texture, unique everywhere."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    ramps = np.stack([x / width, y / height, (x + y) / (width + height)], axis=-1)
    texture = cv2.GaussianBlur(rng.standard_normal((height, width, 3)).astype(np.float32), (0, 0), 1.5)
    image = 0.2 + 0.5 * ramps + 0.25 * texture / texture.std()
    return np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)


def video_frames() -> list[np.ndarray]:
    """Frame k = fixed random texture in [0, 100] + 12·k, uint8 (48, 64, 3)."""
    base = np.random.default_rng(7).integers(0, 101, (48, 64, 3)).astype(np.uint8)
    return [base + np.uint8(VIDEO_STEP * k) for k in range(VIDEO_FRAMES)]


def write_ffv1(path: Path, frames: list[np.ndarray]) -> Path:
    height, width = frames[0].shape[:2]
    with VideoWriter(path, width=width, height=height, fps=Fraction(25), codec="ffv1") as writer:
        for frame in frames:
            writer.write(frame)
    return path


def cheap_config() -> DegradeConfig:
    """Blur, resample, noise and JPEG (no H.264) so items are quick to make."""
    return DegradeConfig.from_dict({"h264": {"probability": 0.0}, "jpeg": {"probability": 0.5}})


def make_pair_dataset(root: Path) -> PairDataset:
    """Module-level so the same construction is used in the main process and picklable for workers."""
    return PairDataset(root, patch_size=32, length=8, seed=123, config=DegradeConfig(), scale_range=(0.5, 1.0))


@pytest.fixture(scope="module")
def media_tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    """A folder with images and a video at several depths, plus things that must be ignored."""
    root = tmp_path_factory.mktemp("media")
    (root / "sub" / "deep").mkdir(parents=True)
    write_image(root / "a.png", Image(photo(64, 80, 1)))
    write_image(root / "sub" / "b.png", Image(photo(72, 64, 2)))
    PillowImage.fromarray(photo(64, 64, 3)).save(root / "sub" / "deep" / "c.jpg", quality=95)
    PillowImage.fromarray(photo(64, 64, 4)).save(root / "sub" / "D.PNG")  # suffixes match in any case
    write_ffv1(root / "sub" / "clip.mkv", video_frames())
    write_image(root / ".hidden.png", Image(photo(64, 64, 5)))
    (root / "notes.txt").write_text("not media")
    (root / "fake.png.txt").write_text("not media either")
    os.symlink(root / "sub" / "b.png", root / "link.png")  # duplicate of sub/b.png
    os.symlink(root / "sub", root / "alias")  # a linked folder: same files again
    os.symlink(root / "missing.png", root / "broken.png")  # dangling link: not a file
    media = ("a.png", "sub/b.png", "sub/deep/c.jpg", "sub/D.PNG", "sub/clip.mkv")
    return root, sorted((root / name).resolve() for name in media)


@pytest.fixture(scope="module")
def stills(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[np.ndarray]]:
    root = tmp_path_factory.mktemp("stills")
    sources = [photo(72, 96, 11), photo(80, 64, 12)]
    for i, pixels in enumerate(sources):
        write_image(root / f"still_{i}.png", Image(pixels))
    return root, sources


@pytest.fixture(scope="module")
def pan_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pan")
    write_image(root / "photo.png", Image(photo(160, 160, 21)))
    return root


@pytest.fixture(scope="module")
def video_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("video")
    write_ffv1(root / "clip.mkv", video_frames())
    return root


def as_image(tensor: torch.Tensor) -> np.ndarray:
    """(3, P, P) tensor → (P, P, 3) float32 array."""
    return np.ascontiguousarray(tensor.numpy().transpose(1, 2, 0))


def best_match(source: np.ndarray, patch: np.ndarray) -> tuple[float, tuple[int, int]]:
    """Smallest mean squared difference of ``patch`` against every position in ``source``, and (top, left)."""
    scores = cv2.matchTemplate(source, patch, cv2.TM_SQDIFF) / patch.size
    minimum, _, (left, top), _ = cv2.minMaxLoc(scores)
    return float(minimum), (top, left)


# --------------------------------------------------------------------------- list_media
def test_list_media_recursive_skips_hidden_and_non_media_and_dedupes_links(media_tree) -> None:
    root, expected = media_tree
    assert list_media(root) == expected
    assert list_media(str(root)) == expected
    # The same files reached through several roots (a link, a file, the folder) appear once.
    assert list_media([root / "link.png", root, root / "alias" / "b.png"]) == expected
    assert list_media(root / "link.png") == [(root / "sub" / "b.png").resolve()]


def test_list_media_missing_root_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        list_media(tmp_path / "nowhere")


def test_empty_folder_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(ValueError, match="no images or videos"):
        PairDataset(tmp_path)


def add_bad_sources(root: Path, *, patch_size: int) -> dict[str, str]:
    """Files a user's folder may hold that cannot be trained on, each with what its warning says."""
    (root / "empty.png").write_bytes(b"")
    (root / "garbage.jpg").write_bytes(b"\xff\xd8\xff\xe0garbage" * 10)
    (root / "noise.mp4").write_bytes(np.random.default_rng(0).bytes(500))
    write_image(root / "small.png", Image(photo(patch_size - 1, 80, 9)))
    return {"empty.png": "empty", "garbage.jpg": "damaged", "noise.mp4": "not a readable video",
            "small.png": f"smaller than patch_size {patch_size}"}


def truncated_png(path: Path, seed: int) -> Path:
    """A PNG whose header (and size) read but whose pixels do not decode."""
    write_image(path, Image(photo(64, 64, seed)))
    path.write_bytes(path.read_bytes()[:600])
    return path


def test_unusable_sources_are_skipped_when_the_dataset_is_built(stills, tmp_path, caplog) -> None:
    root, _ = stills
    for name in ("still_0.png", "still_1.png"):
        (tmp_path / name).write_bytes((root / name).read_bytes())
    bad = add_bad_sources(tmp_path, patch_size=32)
    with caplog.at_level("WARNING", logger="vidrestore.data"):
        dataset = PairDataset(tmp_path, patch_size=32, length=20, seed=3, config=cheap_config())
    assert [p.name for p in dataset.paths] == ["still_0.png", "still_1.png"] and dataset.min_side == 64
    for name, reason in bad.items():
        assert any(name in r.getMessage() and reason in r.getMessage() for r in caplog.records), name
    assert "skipped 4 of 6 sources" in caplog.text
    reference = PairDataset(root, patch_size=32, length=20, seed=3, config=cheap_config())
    for index in range(20):  # the same items as a folder without the bad files
        assert torch.equal(dataset[index][1], reference[index][1])
    # A folder with no usable source fails at once, naming a file and why.
    for name in ("still_0.png", "still_1.png"):
        (tmp_path / name).unlink()
    with pytest.raises(ValueError, match="no usable images or videos.*empty.png: file is empty"):
        PairDataset(tmp_path, patch_size=32)


def test_a_source_that_fails_to_decode_is_skipped_the_same_way_in_any_order(stills, tmp_path, caplog) -> None:
    """Its header passes, its pixels do not decode: each item that draws it draws another source
    from its own generator, so the items do not depend on what the process decoded before."""
    root, _ = stills
    for name in ("still_0.png", "still_1.png"):
        (tmp_path / name).write_bytes((root / name).read_bytes())
    truncated_png(tmp_path / "cut.png", 5)

    def make() -> PairDataset:
        return PairDataset(tmp_path, patch_size=32, length=24, seed=4, config=cheap_config())

    with caplog.at_level("WARNING", logger="vidrestore.data"):
        forward = [make()[i][1] for i in range(24)]  # a fresh dataset per item: nothing known yet
    assert "cut.png" in caplog.text and "1 of 3 sources skipped" in caplog.text
    caplog.clear()
    backward = make()
    with caplog.at_level("WARNING", logger="vidrestore.data"):
        items = {i: backward[i][1] for i in reversed(range(24))}
    assert caplog.text.count("cut.png") == 1, "warned once per process"
    assert all(torch.equal(forward[i], items[i]) for i in range(24))
    # Nothing decodes: a clear error, not an endless search.
    for name in ("still_0.png", "still_1.png"):
        truncated_png(tmp_path / name, 6)
    with pytest.raises(ValueError, match="none of the 3 sources could be decoded"):
        make()[0]


# --------------------------------------------------------------------------- PairDataset
def test_pair_items_are_float_tensors_in_range_and_crops_of_a_source(stills) -> None:
    root, sources = stills
    dataset = PairDataset(root, patch_size=32, length=6, seed=5, config=cheap_config(), scale_range=(1.0, 1.0))
    sources_float = [s.astype(np.float32) / 255.0 for s in sources]
    for index in range(len(dataset)):
        degraded, clean = dataset[index]
        for tensor in (degraded, clean):
            assert tensor.dtype == torch.float32 and tensor.shape == (3, 32, 32)
            assert float(tensor.min()) >= 0.0 and float(tensor.max()) <= 1.0
        # At scale 1 the clean patch is a source crop, possibly flipped and rotated (8 ways).
        patch = as_image(clean)
        variants = [np.ascontiguousarray(np.rot90(p, k)) for p in (patch, patch[:, ::-1]) for k in range(4)]
        exact = False
        for source in sources_float:
            for variant in variants:
                error, (top, left) = best_match(source, variant)
                if error < 1e-6:  # matchTemplate's float sums; then compare exactly
                    exact |= np.array_equal(variant, source[top : top + 32, left : left + 32])
        assert exact, f"item {index} is not a crop of any source"
        # The degraded patch is the logged plan applied to the crop, then the logged flip and turns.
        from vidrestore.data import _augment

        flip, turns = dataset.orientation_for(index)
        upright = np.ascontiguousarray(np.rot90(patch, -turns))
        upright = np.ascontiguousarray(upright[:, ::-1]) if flip else upright
        replay = _augment(apply_plan(upright, dataset.plan_for(index)), flip, turns)
        np.testing.assert_array_equal(as_image(degraded), replay)


def test_pair_scale_shrinks_a_larger_region(stills) -> None:
    root, sources = stills
    dataset = PairDataset(
        root, patch_size=32, length=3, seed=1, config=cheap_config(), scale_range=(0.5, 0.5), augment=False
    )
    # Scale 0.5: a 64-px source region area-averaged down to 32 px. Try every position.
    shrunk = {
        (s, top, left): cv2.resize(
            source[top : top + 64, left : left + 64].astype(np.float32) / 255.0, (32, 32), interpolation=cv2.INTER_AREA
        )
        for s, source in enumerate(sources)
        for top in range(source.shape[0] - 63)
        for left in range(source.shape[1] - 63)
    }
    for index in range(len(dataset)):
        clean = as_image(dataset[index][1])
        errors = [float(np.abs(clean - region).max()) for region in shrunk.values()]
        assert min(errors) < 1e-6, f"item {index} is not a shrunken 64-px source region"
        # ... and not a raw 32-px crop.
        assert min(best_match(s.astype(np.float32) / 255.0, clean)[0] for s in sources) > 1e-6


def test_pair_scale_above_one_enlarges_a_smaller_region_bicubically(stills) -> None:
    root, sources = stills
    dataset = PairDataset(
        root, patch_size=32, length=3, seed=2, config=cheap_config(), scale_range=(2.0, 2.0), augment=False
    )
    # Scale 2: a 16-px source region enlarged (bicubic, clipped) to 32 px: a soft clean target.
    enlarged = [
        np.clip(cv2.resize(source[top : top + 16, left : left + 16].astype(np.float32) / 255.0, (32, 32),
                           interpolation=cv2.INTER_CUBIC), 0.0, 1.0)
        for source in sources
        for top in range(source.shape[0] - 15)
        for left in range(source.shape[1] - 15)
    ]
    for index in range(len(dataset)):
        clean = as_image(dataset[index][1])
        assert min(float(np.abs(clean - region).max()) for region in enlarged) < 1e-6, (
            f"item {index} is not an enlarged 16-px source region"
        )


def test_mild_fraction_draws_that_share_of_plans_from_the_mild_config(media_tree) -> None:
    from vidrestore.degrade import mild_config

    root, _ = media_tree
    plain = make_pair_dataset(root)
    gentle = mild_config()
    mixed = PairDataset(root, patch_size=32, length=400, seed=123, config=DegradeConfig(), scale_range=(0.5, 1.0),
                        mild_config=gentle, mild_fraction=0.5)
    # The mild config's ranges sit inside the default ones, at their gentle end: a plan whose JPEG
    # quality is below 80, or whose noise sigma is above 0.02, came from the default config.
    strong = 0
    for index in range(400):
        ops = {op.name: op for op in mixed.plan_for(index).ops}
        strong += ("jpeg" in ops and ops["jpeg"].quality < 80) or (
            "gaussian_noise" in ops and ops["gaussian_noise"].sigma > 0.02)
    # 41 % of default plans hit either: ~82 expected here, ~163 if every plan were a default one.
    assert 50 < strong < 125
    every_mild = PairDataset(root, patch_size=32, length=50, seed=123, mild_config=gentle, mild_fraction=1.0)
    for index in range(50):
        for op in every_mild.plan_for(index).ops:
            assert op.name != "jpeg" or op.quality >= 80
            assert op.name != "gaussian_noise" or op.sigma <= 0.02
    # mild_fraction 0 draws nothing extra: the default stream is unchanged.
    unchanged = PairDataset(root, patch_size=32, length=8, seed=123, config=DegradeConfig(), scale_range=(0.5, 1.0),
                            mild_config=gentle, mild_fraction=0.0)
    assert [unchanged.plan_for(i) for i in range(8)] == [plain.plan_for(i) for i in range(8)]
    with pytest.raises(ValueError, match="mild_fraction"):
        PairDataset(root, patch_size=32, mild_fraction=1.5)
    for bad in ((0.0, 1.0), (2.0, 1.0)):
        with pytest.raises(ValueError, match="scale_range"):
            PairDataset(root, patch_size=32, scale_range=bad)


def test_clean_fraction_leaves_that_share_of_items_undegraded(media_tree) -> None:
    root, _ = media_tree
    plain = make_pair_dataset(root)
    mixed = PairDataset(root, patch_size=32, length=400, seed=123, scale_range=(0.5, 1.0), clean_fraction=0.25)
    empty = sum(not mixed.plan_for(index).ops for index in range(400))
    assert 70 < empty < 130  # ~100 expected; a default plan always has at least one operator
    assert all(plain.plan_for(index).ops for index in range(50))
    every = PairDataset(root, patch_size=32, length=6, seed=123, scale_range=(0.5, 1.0), clean_fraction=1.0)
    for index in range(6):
        degraded, clean = every[index]
        assert torch.equal(degraded, clean)
        # Same source crop as the default stream: only the plan differs.
        assert torch.equal(clean, plain[index][1])
    unchanged = PairDataset(root, patch_size=32, length=8, seed=123, scale_range=(0.5, 1.0), clean_fraction=0.0)
    assert [unchanged.plan_for(i) for i in range(8)] == [plain.plan_for(i) for i in range(8)]
    with pytest.raises(ValueError, match="clean_fraction"):
        PairDataset(root, patch_size=32, clean_fraction=-0.1)


def test_defocus_fraction_blurs_the_clean_target_itself(media_tree) -> None:
    from vidrestore.data import _augment
    from vidrestore.degrade import ops

    root, _ = media_tree
    sharp = PairDataset(root, patch_size=32, length=4, seed=9, config=cheap_config(), scale_range=(0.5, 1.0))
    soft = PairDataset(root, patch_size=32, length=4, seed=9, config=cheap_config(), scale_range=(0.5, 1.0),
                       defocus_fraction=1.0, defocus_sigma=(2.0, 2.0))
    for index in range(4):
        clean, plan, orientation = sharp._item(index)
        degraded, target = soft[index]
        clean = _augment(clean, *orientation)
        expected = ops.gaussian_blur(clean, kernel_size=13, sigma=2.0)
        np.testing.assert_allclose(as_image(target), expected, atol=1e-6)
        assert float(np.abs(expected - clean).max()) > 0.01  # the blur did change the crop
        assert soft.plan_for(index) == plan  # same crop and plan, drawn before the defocus
        upright = ops.gaussian_blur(sharp._item(index)[0], kernel_size=13, sigma=2.0)
        np.testing.assert_allclose(as_image(degraded), _augment(apply_plan(upright, plan), *orientation), atol=1e-6)
    with pytest.raises(ValueError, match="defocus"):
        PairDataset(root, patch_size=32, defocus_fraction=2.0)


def test_pair_items_replay_from_seed_epoch_and_index(media_tree) -> None:
    root, _ = media_tree
    first = make_pair_dataset(root)
    order = [5, 2, 7, 0, 3]
    items = {i: first[i] for i in order}
    fresh = make_pair_dataset(root)
    for i in reversed(order):
        degraded, clean = fresh[i]
        assert torch.equal(degraded, items[i][0]) and torch.equal(clean, items[i][1])
    # Another seed, another epoch: different items.
    other_seed = PairDataset(root, patch_size=32, length=8, seed=124, scale_range=(0.5, 1.0))
    fresh.set_epoch(1)
    for i in order:
        for dataset in (other_seed, fresh):
            degraded, clean = dataset[i]
            assert not (torch.equal(degraded, items[i][0]) and torch.equal(clean, items[i][1]))
    fresh.set_epoch(0)
    assert torch.equal(fresh[5][0], items[5][0]), "going back to epoch 0 gives epoch 0's items"


def test_pair_items_identical_with_dataloader_workers(media_tree) -> None:
    root, _ = media_tree
    dataset = make_pair_dataset(root)
    dataset.set_epoch(3)
    order = [6, 1, 4, 0, 7, 2, 5, 3]
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["vidrestore.data"])  # import torch once, not once per worker
    loader = DataLoader(dataset, batch_size=None, sampler=order, num_workers=2, multiprocessing_context=context)
    from_workers = list(loader)
    serial = make_pair_dataset(root)
    serial.set_epoch(3)
    in_process = {i: serial[i] for i in sorted(order)}
    assert len(from_workers) == len(order)
    for i, (degraded, clean) in zip(order, from_workers):
        assert torch.equal(degraded, in_process[i][0]) and torch.equal(clean, in_process[i][1])
    assert len({clean.numpy().tobytes() for _, clean in from_workers}) == len(order)


# --------------------------------------------------------------------------- ClipDataset
def phase_shift(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Rough (dx, dy) translation from ``a`` to ``b`` by phase correlation (±0.3 px on 48-px patches)."""
    window = cv2.createHanningWindow(a.shape[::-1], cv2.CV_64F)
    # Copies: this OpenCV's phaseCorrelate multiplies the window into its inputs in place.
    (dx, dy), _ = cv2.phaseCorrelate(a.copy(), b.copy(), window)
    return np.array([dx, dy])


def refined_shift(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, float]:
    """(dx, dy) such that ``b(x) ≈ a(x - shift)``, refined by ECC from the phase-correlation
    guess (±0.1 px here), and the correlation coefficient after alignment."""
    guess = phase_shift(a, b)
    warp = np.float32([[1, 0, -guess[0]], [0, 1, -guess[1]]])
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 1e-6)
    interior = np.zeros(a.shape, np.uint8)
    interior[4:-4, 4:-4] = 1  # content entering at the borders is not in the other frame
    cc, warp = cv2.findTransformECC(
        b.astype(np.float32), a.astype(np.float32), warp, cv2.MOTION_TRANSLATION, criteria, interior, 1
    )
    return -warp[:, 2].astype(np.float64), float(cc)


def test_clip_from_a_still_is_a_slow_smooth_pan(pan_source: Path) -> None:
    max_speed = 1.5
    dataset = ClipDataset(
        pan_source, frames=5, patch_size=48, length=4, seed=2, config=cheap_config(), max_speed=max_speed
    )
    moved = False
    for index in range(len(dataset)):
        degraded, clean = dataset[index]
        assert clean.shape == degraded.shape == (5, 3, 48, 48)
        assert clean.dtype == degraded.dtype == torch.float32
        assert float(clean.min()) >= 0.0 and float(clean.max()) <= 1.0
        assert float(degraded.min()) >= 0.0 and float(degraded.max()) <= 1.0
        gray = [frame.mean(0).double().numpy() for frame in clean]
        velocities = []
        for a, b in zip(gray, gray[1:]):
            rough = phase_shift(a, b)
            assert np.all(np.abs(rough) < max_speed + 0.5), f"item {index}: {rough} px per frame"
            moved |= bool(np.hypot(*rough) > 0.1)
            shift, correlation = refined_shift(a, b)
            # Sub-pixel resampling softens texture a little (0.92–0.99 here); unrelated crops of
            # this photo score about 0.7.
            assert correlation > 0.9, "consecutive frames are one picture translated"
            assert np.all(np.abs(shift - rough) < 0.5), "both estimators agree"
            # Per axis: |velocity| <= max_speed, plus at most 0.05·max_speed per frame of
            # acceleration over 4 frames, plus estimator error.
            assert np.all(np.abs(shift) < 1.2 * max_speed + 0.15), f"item {index}: {shift} px per frame"
            velocities.append(shift)
        # A pan accelerates slowly (≤ 0.05·max_speed per frame² per axis): velocities are smooth.
        assert np.all(np.abs(np.diff(velocities, axis=0)) < 0.25), velocities
    assert moved, "at least one clip moves"


def test_clip_from_a_still_without_speed_is_static(pan_source: Path) -> None:
    dataset = ClipDataset(pan_source, frames=4, patch_size=32, length=2, seed=4, config=cheap_config(), max_speed=0.0)
    for index in range(len(dataset)):
        clean = dataset[index][1]
        for frame in clean[1:]:
            assert torch.equal(frame, clean[0])


def test_a_still_too_small_for_its_pan_is_named(tmp_path: Path) -> None:
    from vidrestore.io import Image, write_image

    write_image(tmp_path / "small.png", Image(pixels=np.full((60, 60, 3), 128, np.uint8)))
    dataset = ClipDataset(tmp_path, frames=5, patch_size=48, length=1, seed=0, config=cheap_config(), max_speed=2.0)
    with pytest.raises(ValueError, match=r"small\.png: 60x60 has no room for a 5-frame pan"):
        dataset[0]


def test_clip_from_a_video_is_consecutive_frames_of_one_crop(video_source: Path) -> None:
    dataset = ClipDataset(
        video_source,
        frames=4,
        patch_size=32,
        length=6,
        seed=3,
        config=cheap_config(),
        scale_range=(1.0, 1.0),
        augment=False,
    )
    sources = [f.astype(np.float32) / 255.0 for f in video_frames()]
    starts = set()
    for index in range(len(dataset)):
        degraded, clean = dataset[index]
        assert clean.shape == degraded.shape == (4, 3, 32, 32)
        frames = [as_image(f) for f in clean]
        matches = [best_match(s, frames[0]) for s in sources]
        start = int(np.argmin([m[0] for m in matches]))
        assert matches[start][0] < 1e-6, "the first frame is a crop of a source frame"
        top, left = matches[start][1]
        assert start + 4 <= VIDEO_FRAMES
        for t, frame in enumerate(frames):  # FFV1 is lossless: exact crops of consecutive frames
            np.testing.assert_array_equal(frame, sources[start + t][top : top + 32, left : left + 32])
        starts.add(start)
    assert len(starts) >= 2, "clips start at different frames"


def test_clip_items_replay(pan_source: Path) -> None:
    def make() -> ClipDataset:
        return ClipDataset(pan_source, frames=3, patch_size=32, length=4, seed=9, config=cheap_config())

    first, second = make(), make()
    a = [first[i] for i in (0, 1, 2)]
    b = [second[i] for i in (2, 1, 0)][::-1]
    for (da, ca), (db, cb) in zip(a, b):
        assert torch.equal(da, db) and torch.equal(ca, cb)
    second.set_epoch(1)
    assert not torch.equal(second[0][1], a[0][1])


def test_motion_blur_reaches_the_net_in_every_direction(media_tree) -> None:
    """Flips and turns came before the degradation, so a blur drawn at 0–90° (the spec's range)
    was always at 0–90° in the net's input: a blur at 135° never appeared in training."""
    root, _ = media_tree
    off = {"probability": 0.0}
    config = DegradeConfig.from_dict({"blur": off, "resample": off, "noise": off, "temporal_noise": off, "jpeg": off,
                                      "h264": off, "motion_blur": {"probability": 1.0, "length": [9.0, 9.0],
                                                                   "angle": [45.0, 45.0]}})
    dataset = PairDataset(root, patch_size=32, length=16, seed=3, config=config, scale_range=(1.0, 1.0))
    directions = set()
    for index in range(16):
        degraded, clean = (as_image(t) for t in dataset[index])
        # Along the blur the degraded picture varies least: compare the two diagonals' differences.
        gray = degraded.mean(axis=2)
        along_45 = np.abs(gray[1:, :-1] - gray[:-1, 1:]).mean()  # "/" neighbours
        along_135 = np.abs(gray[1:, 1:] - gray[:-1, :-1]).mean()  # "\" neighbours
        directions.add("/" if along_45 < along_135 else "\\")
    assert directions == {"/", "\\"}


def test_horizontal_chroma_bleed_is_never_turned_or_mirrored(media_tree) -> None:
    """Turned after the degradation, tape's horizontal, rightward colour smear would become
    vertical or leftward: with it in the plan, a crop is only ever turned upside down."""
    root, _ = media_tree
    off = {"probability": 0.0}
    config = DegradeConfig.from_dict({"blur": off, "resample": off, "noise": off, "temporal_noise": off, "jpeg": off,
                                      "h264": off, "motion_blur": off, "chroma_bleed": {"probability": 1.0}})
    dataset = PairDataset(root, patch_size=32, length=24, seed=4, config=config, scale_range=(1.0, 1.0))
    orientations = {dataset.orientation_for(index) for index in range(24)}
    assert orientations == {(False, 0), (True, 2)}
