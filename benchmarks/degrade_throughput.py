"""Throughput of ``vidrestore degrade`` on ~1 MP photos, and an interrupted run resuming.

    .venv/bin/python benchmarks/degrade_throughput.py [PHOTO_DIR] [--count 48]

PHOTO_DIR (default ``data/corpus``, else ``samples/``) supplies photos; each is resized to
about 1 MP (1216×832) JPEG in a temporary folder. Prints, from the same run:

1. the baseline: a single-process loop (read, sample+apply the default degradations, write PNG)
   — what a plain OpenCV script does;
2. ``vidrestore degrade`` with all cores (the CLI, in a subprocess), images/s and the ratio;
3. resume: a run killed (SIGKILL) part-way, then re-run; checks that nothing finished is redone,
   that every output is intact, and that the result is byte-identical to an uninterrupted run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "vidrestore.cli"]


def make_photos(source_dir: Path, out: Path, count: int) -> None:
    from vidrestore.data import list_media, load_rgb

    # JPEG sources: in the demo corpus those are the photos (the PNGs are mostly graphics).
    sources = [p for p in list_media(source_dir) if p.suffix.lower() in (".jpg", ".jpeg")]
    out.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for index in range(count):
        pixels = load_rgb(sources[index % len(sources)])
        h, w = pixels.shape[:2]
        # A different ~1 MP window of each source per copy, so files differ.
        scale = max(832 / h, 1216 / w) * rng.uniform(1.0, 1.6)
        small = cv2.resize(pixels, (max(1216, round(w * scale)), max(832, round(h * scale))), interpolation=cv2.INTER_AREA)
        top = int(rng.integers(0, small.shape[0] - 832 + 1))
        left = int(rng.integers(0, small.shape[1] - 1216 + 1))
        crop = small[top : top + 832, left : left + 1216]
        cv2.imwrite(str(out / f"photo_{index:03d}.jpg"), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])


def baseline(photos: Path, out: Path) -> float:
    """Single-process loop doing the same work with OpenCV directly."""
    from vidrestore.degrade import DegradeConfig, degrade

    out.mkdir(parents=True)
    config = DegradeConfig()
    files = sorted(photos.glob("*.jpg"))
    started = time.perf_counter()
    for index, path in enumerate(files):
        image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
        degraded, _ = degrade(image, config, index)
        cv2.imwrite(str(out / (path.stem + ".png")), cv2.cvtColor(np.clip(degraded * 255 + 0.5, 0, 255).astype(np.uint8), cv2.COLOR_RGB2BGR))
    return len(files) / (time.perf_counter() - started)


def tree_digest(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((folder / "degraded").rglob("*"))
        if p.is_file()
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("photo_dir", nargs="?")
    parser.add_argument("--count", type=int, default=48)
    args = parser.parse_args()
    source = Path(args.photo_dir) if args.photo_dir else (ROOT / "data/corpus" if (ROOT / "data/corpus").is_dir() else ROOT / "samples")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        photos = tmp / "photos"
        make_photos(source, photos, args.count)
        print(f"{args.count} photos of 1216x832 (1.01 MP) from {source}; {os.cpu_count()} cores")

        base = baseline(photos, tmp / "baseline")
        print(f"baseline single-process OpenCV loop: {base:.2f} images/s")

        started = time.perf_counter()
        subprocess.run([*CLI, "degrade", str(photos), str(tmp / "full"), "--seed", "1"], check=True, env=env,
                       stderr=subprocess.DEVNULL)
        full_rate = args.count / (time.perf_counter() - started)
        print(f"vidrestore degrade (all cores, CLI incl. start-up): {full_rate:.2f} images/s  ({full_rate / base:.2f}x baseline)")

        # Interrupted run: kill it once about a third of the files are done, then resume.
        out = tmp / "resumed"
        process = subprocess.Popen([*CLI, "degrade", str(photos), str(out), "--seed", "1"], env=env,
                                   stderr=subprocess.DEVNULL, start_new_session=True)
        manifest = out / "manifest.jsonl"
        while process.poll() is None:
            if manifest.is_file() and sum(1 for _ in open(manifest)) >= args.count // 3:
                os.killpg(process.pid, signal.SIGKILL)
                break
            time.sleep(0.05)
        process.wait()
        before = {json.loads(line)["key"] for line in open(manifest)} if manifest.is_file() else set()
        mtimes = {p: p.stat().st_mtime_ns for p in (out / "degraded").rglob("*.png")}
        partial = [p.name for p in out.rglob("*partial*")]
        subprocess.run([*CLI, "degrade", str(photos), str(out), "--seed", "1"], check=True, env=env, stderr=subprocess.DEVNULL)
        records = [json.loads(line) for line in open(manifest)]
        keys = [r["key"] for r in records]
        redone = [p for p, m in mtimes.items() if p.stat().st_mtime_ns != m and p.name.split("__v")[0] in {k.split("#")[0] for k in before}]
        identical = tree_digest(out) == tree_digest(tmp / "full")
        print(f"interrupted after {len(before)} of {args.count} files (SIGKILL); leftover temp files: {len(partial)}")
        print(f"resumed: manifest {len(keys)} lines, {len(set(keys))} unique; finished files redone: {len(redone)}; "
              f"outputs byte-identical to the uninterrupted run: {identical}")
        ok = len(set(keys)) == args.count == len(keys) and not redone and identical
        print("RESUME CHECK:", "PASS" if ok else "FAIL")
        sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
