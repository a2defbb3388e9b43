"""vidrestore: video and image restoration with a GAN-trained U-Net.

Public API (see README): :class:`Restorer` for batches of frames, :func:`restore_video` for
files, :mod:`vidrestore.io` for media I/O, :mod:`vidrestore.degrade` for the degradation
pipeline. ``Restorer`` and ``restore_video`` are imported on first use, so tools that only touch
media or degradations (``vidrestore degrade`` workers) start without loading torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vidrestore.errors import CorruptMediaError, MediaError, ModelError, UnsupportedFormatError, VidrestoreError

if TYPE_CHECKING:
    from vidrestore.engine import Restorer
    from vidrestore.video import restore_video

__version__ = "0.1.0"

__all__ = [
    "CorruptMediaError",
    "MediaError",
    "ModelError",
    "Restorer",
    "UnsupportedFormatError",
    "VidrestoreError",
    "__version__",
    "restore_video",
]

_LAZY = {"Restorer": "vidrestore.engine", "restore_video": "vidrestore.video"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'vidrestore' has no attribute {name!r}")
