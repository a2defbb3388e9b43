"""Finding media files: which extensions count as images and videos, and a recursive lister."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

__all__ = ["IMAGE_EXTENSIONS", "VIDEO_ENCODERS", "VIDEO_EXTENSIONS", "list_media"]

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".webp", ".tif", ".tiff", ".bmp"})
VIDEO_EXTENSIONS = frozenset({
    ".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".y4m",
    # What old footage comes in: DVD and camcorder MPEG-2 (VOB, TOD, M2V), AVCHD (MTS/M2TS), DV, old
    # phones (3GP), web video (FLV/F4V), Windows Media (WMV/ASF), RealVideo, Ogg, QuickTime, MXF. Not
    # .mod (also Go modules and tracker music); files without a video stream in a folder are left alone.
    ".vob", ".tod", ".m2v", ".mts", ".m2ts", ".dv", ".3gp", ".3g2", ".flv", ".f4v", ".wmv", ".asf",
    ".rm", ".rmvb", ".ogv", ".qt", ".mxf",
})

# Video codec names vidrestore writes (aliases included) -> the FFmpeg encoder. Here, not in
# io.video, so that the command line can offer them without importing PyAV.
VIDEO_ENCODERS = {"libx264": "libx264", "h264": "libx264", "libx265": "libx265", "h265": "libx265",
                  "hevc": "libx265", "ffv1": "ffv1"}


def list_media(roots: str | Path | Iterable[str | Path]) -> list[Path]:
    """Image and video files under ``roots`` (files or folders, recursive), sorted, links resolved
    and de-duplicated; hidden files and folders skipped."""
    if isinstance(roots, (str, Path)):
        roots = [roots]
    found: dict[Path, None] = {}
    for root in map(Path, roots):
        if root.is_file():
            candidates: Iterable[Path] = [root]
        elif root.is_dir():
            candidates = sorted(
                p for p in root.rglob("*")
                if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
            )
        else:
            raise FileNotFoundError(f"{root}: no such file or folder")
        for path in candidates:
            if path.suffix.lower() in IMAGE_EXTENSIONS | VIDEO_EXTENSIONS:
                found.setdefault(path.resolve(), None)
    return sorted(found)
