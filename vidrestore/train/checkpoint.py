"""Atomic training checkpoints.

A checkpoint holds model, optimizer and RNG state for an exact resume. It is written with
``torch.save`` to a temporary file in the same folder, fsynced, then renamed over the old one,
so a crash never leaves a half-written checkpoint; it is read back with
``torch.load(weights_only=True)`` (no arbitrary unpickling). Checkpoints are for resuming runs;
what users download is the generator exported as safetensors (:mod:`vidrestore.weights`).
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch

from vidrestore.io._files import make_folder, partial_path

__all__ = ["save_checkpoint", "load_checkpoint"]


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically (a temporary ``.NAME.TOKEN.partial.pt`` beside it,
    fsynced, renamed over the old checkpoint)."""
    path = Path(path)
    make_folder(path.parent)
    tmp = partial_path(path, unique=True)
    try:
        with open(tmp, "wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """The state :func:`save_checkpoint` wrote; ValueError for a file that is not one (torch's own
    message would suggest loading it with ``weights_only=False``, which could run its code)."""
    try:
        return torch.load(Path(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise ValueError("damaged, or not a vidrestore checkpoint") from error
