"""vidrestore: video and image restoration with a GAN-trained U-Net.

Public API (see README): :class:`Restorer` for batches of frames, :func:`restore_video` for
files, :mod:`vidrestore.io` for media I/O, :mod:`vidrestore.degrade` for the degradation
pipeline.
"""

from __future__ import annotations

from vidrestore.engine import Restorer
from vidrestore.errors import CorruptMediaError, MediaError, ModelError, UnsupportedFormatError, VidrestoreError

__version__ = "0.1.0"

__all__ = [
    "CorruptMediaError",
    "MediaError",
    "ModelError",
    "Restorer",
    "UnsupportedFormatError",
    "VidrestoreError",
    "__version__",
]
