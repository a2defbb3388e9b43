"""Copy an image folder into a compact one that fits a size budget (e.g. to carry a training set
to a rented GPU machine): files under ``--keep-below`` bytes, and JPEG or WebP files already within
``--max-mp``, are copied as they are (so is a lossy file that would not get smaller); others are read as RGB (alpha dropped, as the training loader does), shrunk by area averaging to at most
``--max-mp`` megapixels and written as JPEG at ``--quality`` with 4:4:4 chroma (artifacts far below
the training degradations). Prints the total size.

Shrinking a big photo makes its pixels crisper than the original's (a soft 18 MP photo becomes a
sharp 1.6 MP one), which changes what the model learns to leave alone; ``--tiles N`` instead cuts up
to N windows of ``--max-mp`` at the original resolution, evenly spread over the picture.

    python scripts/compact_corpus.py data/curated/train data/compact/train --max-mp 4.2
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vidrestore.data import load_rgb  # noqa: E402
from vidrestore.io.convert import from_float, to_float  # noqa: E402
from vidrestore.io.listing import IMAGE_EXTENSIONS  # noqa: E402


def _megapixels(path: Path) -> float:
    from PIL import Image

    with Image.open(path) as image:
        return image.width * image.height / 1e6


def _windows(height: int, width: int, max_mp: float, tiles: int) -> list[tuple[int, int, int, int]]:
    """Up to ``tiles`` ``(y, x, h, w)`` windows of at most ``max_mp`` megapixels (the picture's
    aspect), picked evenly from a grid that covers it (overlapping where it does not fit exactly);
    one window is the centre."""
    factor = (max_mp * 1e6 / (height * width)) ** 0.5
    h, w = max(1, int(height * factor)), max(1, int(width * factor))
    rows, cols = -(-height // h), -(-width // w)  # overlapping where the grid does not fit exactly
    ys = np.linspace(0, height - h, rows).round().astype(int)
    xs = np.linspace(0, width - w, cols).round().astype(int)
    cells = [(int(y), int(x)) for y in ys for x in xs]
    if tiles == 1:
        return [((height - h) // 2, (width - w) // 2, h, w)]  # the centre
    picks = np.linspace(0, len(cells) - 1, min(tiles, len(cells))).round().astype(int)
    return [(*cells[i], h, w) for i in sorted(set(picks.tolist()))]


def _write_jpeg(out: Path, rgb: np.ndarray, quality: int) -> None:
    params = [cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]
    if not cv2.imwrite(str(out), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params):
        raise OSError(f"{out}: could not write")


def compact(src: Path, dst: Path, *, max_mp: float, quality: int, keep_below: int, tiles: int = 0) -> int:
    dst.mkdir(parents=True, exist_ok=True)
    total = 0
    for path in sorted(p for p in src.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS):
        small = path.stat().st_size < keep_below
        lossy = path.suffix.lower() in (".jpg", ".jpeg", ".webp")
        if small or (lossy and _megapixels(path) <= max_mp):  # no second round of lossy coding
            shutil.copy2(path, dst / path.name)
            total += path.stat().st_size
            continue
        rgb = load_rgb(path)
        if rgb.dtype != np.uint8:
            rgb = from_float(to_float(rgb), np.uint8)
        height, width = rgb.shape[:2]
        stem = path.stem
        if (dst / f"{stem}.jpg").exists() or (src / f"{stem}.jpg").exists() and f"{stem}.jpg" != path.name:
            stem = path.name  # a.png beside a.jpg
        if tiles and height * width > max_mp * 1e6:
            windows = _windows(height, width, max_mp, tiles)
            pieces = {f"{stem}__tile{i}.jpg": rgb[y:y + h, x:x + w] for i, (y, x, h, w) in enumerate(windows)}
        else:
            factor = min(1.0, (max_mp * 1e6 / (height * width)) ** 0.5)
            if factor < 1.0:
                size = (max(1, round(width * factor)), max(1, round(height * factor)))
                rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
            pieces = {f"{stem}.jpg": rgb}
        for name, piece in pieces.items():
            _write_jpeg(dst / name, np.ascontiguousarray(piece), quality)
        size = sum((dst / name).stat().st_size for name in pieces)
        if lossy and size >= path.stat().st_size:  # the original is smaller as it was
            for name in pieces:
                (dst / name).unlink()
            shutil.copy2(path, dst / path.name)
            size = path.stat().st_size
        total += size
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("src", type=Path)
    parser.add_argument("dst", type=Path)
    parser.add_argument("--max-mp", type=float, default=4.2)
    parser.add_argument("--quality", type=int, default=95)
    parser.add_argument("--keep-below", type=int, default=300_000)
    parser.add_argument("--tiles", type=int, default=0,
                        help="cut up to this many --max-mp windows at full resolution instead of shrinking (0: shrink)")
    args = parser.parse_args()
    total = compact(args.src, args.dst, max_mp=args.max_mp, quality=args.quality, keep_below=args.keep_below,
                    tiles=args.tiles)
    print(f"{args.dst}: {total / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
