"""Shared pieces of the benchmark scripts: the repository's evaluation photos.

The baselines (NLM, BM3D, Degrain2, Real-ESRGAN), the test-set builders and the measurement
helpers live in :mod:`vidrestore.bench`, shared with ``vidrestore bench``.
"""

from __future__ import annotations

from pathlib import Path

from vidrestore.bench.testset import photo_paths as _photo_paths

ROOT = Path(__file__).resolve().parents[1]


def photo_paths(folder: str | Path | None = None) -> list[Path]:
    """Validation photos: ``folder``, else the demo corpus's val split (never trained on), else samples/."""
    default = ROOT / "data/corpus/val" if (ROOT / "data/corpus/val").is_dir() else ROOT / "samples"
    return _photo_paths(folder or default)
