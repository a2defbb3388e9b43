"""Shared pieces of the benchmark scripts: the repository's evaluation photos.

The baselines (NLM, BM3D, Degrain2, Real-ESRGAN), the test-set builders and the measurement
helpers live in :mod:`vidrestore.bench`, shared with ``vidrestore bench``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from vidrestore.bench.testset import default_photos
from vidrestore.bench.testset import photo_paths as _photo_paths
from vidrestore.engine import DEFAULT_CORRECTION_FLOOR
from vidrestore.errors import MediaError

ROOT = Path(__file__).resolve().parents[1]


def photo_paths(folder: str | Path | None = None) -> list[Path]:
    """Validation photos and videos (never trained on): ``folder``, else the curated val split, else
    the corpus's raw val split, else samples/."""
    if folder is None:
        folder = default_photos(ROOT)
        if not folder.is_dir():  # the samples' clean photo and clip (not their degraded copies)
            return [p for p in _photo_paths(ROOT / "samples") if p.stem.endswith("_clean")]
    return _photo_paths(folder)


def model_label(model: str | Path | None, default: str = "shipped") -> str:
    """A ``--model`` path as a table label: its folder and name (``runs/v9/best.safetensors`` →
    ``v9/best.safetensors``), so two runs' ``best`` files stay apart."""
    return "/".join(Path(model).parts[-2:]) if model else default


def run(main: Callable[[], None]) -> None:
    """Run a script's ``main``: a test set it cannot build (no usable photos or videos, a missing
    folder) ends with its message and exit status 1, not a traceback."""
    try:
        main()
    except (ValueError, FileNotFoundError, MediaError) as exc:
        sys.exit(f"{Path(sys.argv[0]).name}: error: {exc}")


def add_photos_option(parser: argparse.ArgumentParser) -> None:
    """``--photos``: the folder of clean photos and/or videos the test set is drawn from."""
    parser.add_argument("--photos", help="folder of clean photos and/or videos (default data/curated/val, else "
                                         "data/corpus/val)")


def add_correction_floor_option(parser: argparse.ArgumentParser) -> None:
    """``--correction-floor``: the Restorer's ``correction_floor`` for a benchmark's runs."""
    parser.add_argument("--correction-floor", type=float, default=DEFAULT_CORRECTION_FLOOR,
                        help=f"the Restorer's correction_floor in 8-bit levels (default {DEFAULT_CORRECTION_FLOOR:g}; "
                             "0 = the model's output as is)")
