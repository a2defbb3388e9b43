"""Atomic training checkpoints.

A checkpoint holds model, optimizer and RNG state for an exact resume. It is written with
``torch.save`` to a temporary file in the same folder, fsynced, then renamed over the old one,
so a crash never leaves a half-written checkpoint; it is read back with
``torch.load(weights_only=True)`` (no arbitrary unpickling). Checkpoints are for resuming runs;
what users download is the generator exported as safetensors (:mod:`vidrestore.weights`).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

__all__ = ["save_checkpoint", "load_checkpoint"]


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name, suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    return torch.load(Path(path), map_location="cpu", weights_only=True)
