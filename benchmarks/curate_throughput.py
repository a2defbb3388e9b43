"""Curation throughput on ~2 MP photos, and the background criterion's confusion on the corpus.

    .venv/bin/python benchmarks/curate_throughput.py [PHOTO_DIR] [--count 32] [--model FILE]
    .venv/bin/python benchmarks/curate_throughput.py --calibrate [--thresholds 0.1,0.2,0.3]

Throughput: PHOTO_DIR (default ``data/corpus``, else ``samples/``) supplies photos; ``--count``
different ~2 MP (1920×1080) JPEG windows are written to a temporary folder, then timed in the
same run: (1) the baseline, the same checks in one process (``jobs=1``); (2) ``curate`` with all
cores. Prints images/s for both and the ratio (each after a first call on 2 images, whose time —
fork server, worker imports, model load — is printed too); the target is ≥ 4 images/s with 2
cores, classifier included. Run it on an otherwise idle machine. The quality step uses ``--model`` (default: the shipped model; without one
it falls back to an untrained network of the default size, which costs the same to run).

``--calibrate``: the background score of every corpus image against the photo/graphic ground
truth decided by looking at each picture (:data:`PHOTOS`), and the confusion per threshold.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Real camera photographs in data/corpus (name fragments); every other corpus image is a graphic,
# a rendered wallpaper or a painting. Decided by viewing each image, full frame and 1:1 crops.
PHOTOS = (
    "nature__Aqua", "nature__Blinds", "nature__Dune", "nature__FreshFlower", "nature__Garden",
    "nature__GreenMeadow", "nature__LadyBird", "nature__RainDrops", "nature__Storm", "nature__TwoWings",
    "nature__Wood", "nature__YellowFlower", "BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour",
    "EveningGlow", "FallenLeaf", "wallpapers__Grey__", "Kite", "OneStandsOut", "wallpapers__Path__", "summer_1am",
)


def is_photo(path: Path) -> bool:
    return any(fragment in path.name for fragment in PHOTOS)


def calibrate(thresholds: list[float]) -> None:
    from vidrestore.curate import background_stats
    from vidrestore.data import list_media, load_rgb

    paths = list_media([ROOT / "data/corpus/train", ROOT / "data/corpus/val"])
    scores = []
    for path in paths:
        stats = background_stats(load_rgb(path))
        scores.append((is_photo(path), stats, path.name))
        print(f"{'photo  ' if is_photo(path) else 'graphic'} content {stats.content:.3f} flat {stats.flat:.3f} "
              f"score {stats.score:.3f}  {path.name}")
    photos = sum(p for p, _, _ in scores)
    print(f"\n{photos} photos, {len(scores) - photos} graphics")
    for threshold in thresholds:
        kept_photos = sum(p and s.score >= threshold for p, s, _ in scores)
        kept_graphics = [n for p, s, n in scores if not p and s.score >= threshold]
        lost = [n for p, s, n in scores if p and s.score < threshold]
        print(f"threshold {threshold:.2f}: photos kept {kept_photos}/{photos}, graphics rejected "
              f"{len(scores) - photos - len(kept_graphics)}/{len(scores) - photos}; photos lost {lost}; "
              f"graphics kept {kept_graphics}")


def make_photos(source_dir: Path, out: Path, count: int) -> None:
    from vidrestore.data import list_media, load_rgb

    sources = [p for p in list_media(source_dir) if is_photo(p)] or list_media(source_dir)
    out.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for index in range(count):
        pixels = load_rgb(sources[index % len(sources)])
        if pixels.dtype != np.uint8:
            pixels = (pixels >> 8).astype(np.uint8)
        h, w = pixels.shape[:2]
        scale = max(1080 / h, 1920 / w) * rng.uniform(1.0, 1.5)
        small = cv2.resize(pixels, (max(1920, round(w * scale)), max(1080, round(h * scale))), interpolation=cv2.INTER_AREA)
        top, left = int(rng.integers(0, small.shape[0] - 1080 + 1)), int(rng.integers(0, small.shape[1] - 1920 + 1))
        crop = small[top : top + 1080, left : left + 1920]
        cv2.imwrite(str(out / f"photo_{index:03d}.jpg"), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("photo_dir", nargs="?", default=None)
    parser.add_argument("--count", type=int, default=32)
    parser.add_argument("--model", default=None)
    parser.add_argument("--calibrate", action="store_true")
    parser.add_argument("--thresholds", default="0.1,0.15,0.2,0.25,0.3")
    args = parser.parse_args()
    if args.calibrate:
        calibrate([float(t) for t in args.thresholds.split(",")])
        return

    from vidrestore.curate import CurateConfig, curate
    from vidrestore.quality import QualityNetConfig, default_quality_model_path, save_quality_model
    from vidrestore.nets.quality import QualityNet

    source = Path(args.photo_dir) if args.photo_dir else (ROOT / "data/corpus" if (ROOT / "data/corpus").is_dir() else ROOT / "samples")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_photos(source, tmp / "photos", args.count)
        (tmp / "two").mkdir()
        for path in sorted((tmp / "photos").iterdir())[:2]:
            shutil.copy(path, tmp / "two" / path.name)
        model = args.model or (str(default_quality_model_path()) if default_quality_model_path().is_file() else None)
        if model is None:
            import dataclasses

            model = str(tmp / "untrained.safetensors")
            save_quality_model(model, QualityNet(**dataclasses.asdict(QualityNetConfig())).eval(),
                               dataclasses.asdict(QualityNetConfig()))
            print("no trained model: timing an untrained network of the default size")
        # min_background 0 and min_class poor-with-model: every image runs every check.
        config = CurateConfig(min_background=0.0, min_class="poor", model=model)
        timings = {}
        for name, jobs in (("baseline (1 process)", 1), (f"curate ({os.cpu_count()} processes)", None)):
            # First call in this process, on 2 images: fork server start, worker imports, model load.
            started = time.perf_counter()
            curate(tmp / "two", tmp / f"startup_{jobs}", config, jobs=jobs, progress=False)
            startup = time.perf_counter() - started
            started = time.perf_counter()
            counts = curate(tmp / "photos", tmp / f"out_{jobs}", config, jobs=jobs, progress=False)
            timings[name] = time.perf_counter() - started
            print(f"{name}: {args.count / timings[name]:.2f} images/s ({counts['kept']} kept, {counts['rejected']} "
                  f"rejected); first call on 2 images took {startup:.1f} s")
        base, multi = timings.values()
        print(f"speed-up {base / multi:.2f}x; target >= 4 images/s with 2 cores: {'met' if args.count / multi >= 4 else 'NOT met'}")

if __name__ == "__main__":
    main()
