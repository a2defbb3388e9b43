"""Typed errors raised at vidrestore's boundaries.

Every error names the file it concerns and says what went wrong in one line, so a CLI can print
it without a traceback. Codec-level exceptions (PyAV, Pillow, OpenCV) are caught where they
happen and re-raised as one of these, chained for debugging.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["VidrestoreError", "MediaError", "UnsupportedFormatError", "NoVideoStreamError", "CorruptMediaError", "ModelError"]


class VidrestoreError(Exception):
    """Base class of every error vidrestore raises on purpose."""


class MediaError(VidrestoreError):
    """A media file could not be read or written. ``path`` names it; ``reason`` says why."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class UnsupportedFormatError(MediaError):
    """The file is readable but its format, codec or pixel layout is not supported."""


class NoVideoStreamError(UnsupportedFormatError):
    """A container with no video stream (audio only: a voice memo in ``.3gp``, RealAudio, WMA).
    Found in a folder, such a file is left alone with :attr:`LEFT_ALONE`; named, it is an error."""

    LEFT_ALONE = "no video stream (audio only?); left alone"


class CorruptMediaError(MediaError):
    """The file is empty, truncated or corrupt."""


class ModelError(VidrestoreError):
    """A weights file is missing, malformed, or does not match the network."""
