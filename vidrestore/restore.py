"""Restore files: images directly through the engine, videos through :mod:`vidrestore.video`.

:func:`restore_paths` takes files, glob patterns and folders (recursive). One input file and an
output path with a media extension → that file; otherwise the output is a folder: files found
under an input folder keep their relative path (a mirrored tree), loose files keep their name.
A bad file is reported and skipped; the rest go on.

Images keep what they came with: alpha, grayscale, 16-bit depth, ICC profile and EXIF.
"""

from __future__ import annotations

import dataclasses
import glob
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from vidrestore.io._files import remove_stale_partials
from vidrestore.io.listing import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from vidrestore.errors import MediaError, NoVideoStreamError, VidrestoreError

__all__ = ["RestoreReport", "expand_inputs", "restore_image_file", "restore_paths"]

log = logging.getLogger(__name__)


@dataclass
class RestoreReport:
    done: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    # Restored, but from less than the whole file (a truncated video): listed in ``done`` too.
    incomplete: list[tuple[Path, str]] = field(default_factory=list)


def expand_inputs(inputs: list[str | Path], *, exclude: Path | None = None) -> list[tuple[Path, Path]]:
    """``(file, relative output path)`` for every media file the inputs name. In a folder, a link
    to a file elsewhere counts under its own name (links to folders are not followed); files
    under ``exclude`` (the output folder, when it is inside an input folder) are left out."""
    pairs: list[tuple[Path, Path]] = []
    skip = exclude.resolve() if exclude is not None else None
    for item in map(str, inputs):
        path = Path(item)
        if path.is_dir():
            # Only an output folder inside this input folder is left out (one that contains it: all of it).
            inside = skip if skip is not None and path.resolve() in skip.parents else None
            for file in sorted(path.rglob("*")):
                relative = file.relative_to(path)
                if (file.suffix.lower() not in IMAGE_EXTENSIONS | VIDEO_EXTENSIONS or not file.is_file()
                        or any(part.startswith(".") for part in relative.parts)):
                    continue
                if inside is not None and (file.resolve() == inside or inside in file.resolve().parents
                                           or inside in file.absolute().parents):
                    continue  # an earlier run's outputs: restoring them again would nest without end
                pairs.append((file, relative))
        elif path.exists():
            pairs.append((path, Path(path.name)))
        else:
            matches = sorted(glob.glob(item, recursive=True))
            if not matches:
                raise FileNotFoundError(f"{item}: no such file, folder or matching glob")
            pairs.extend((Path(m), Path(Path(m).name)) for m in matches if Path(m).is_file())
    return pairs


def restore_image_file(source: Path, target: Path, restorer: Any) -> None:
    """Restore one image file to ``target`` (format from its extension)."""
    from vidrestore.io import read_image, write_image

    image = read_image(source)
    if image.pixels.dtype == np.float32:
        low, high = float(np.nanmin(image.pixels)), float(np.nanmax(image.pixels))
        if high > 1.0 + 1e-6 or low < -1e-6:
            log.warning("%s: floating-point values from %.3g to %.3g; the restorer and the 16-bit output take 0..1, "
                        "so the rest is clipped (scale an HDR picture into 0..1 first)", source, low, high)
    try:
        restored = restorer(image.pixels)
    except ValueError as exc:  # the pixels themselves (NaN in a float TIFF): the file's fault
        raise MediaError(source, str(exc)) from exc
    # Everything the source carried (ICC, EXIF, DPI, XMP, PNG text) goes along; a lossless source
    # stays lossless in WebP (lossy WebP at quality 95 undid about half of a restoration's gain).
    write_image(target, dataclasses.replace(image, pixels=restored),
                lossless=image.lossless and target.suffix.lower() == ".webp")


def restore_paths(
    inputs: list[str | Path],
    output: str | Path,
    restorer: Any,
    *,
    skip_existing: bool = False,
    video_options: dict[str, Any] | None = None,
    progress: bool = True,
) -> RestoreReport:
    output = Path(output)
    if any(Path(item).is_dir() and Path(item).resolve() == output.resolve() for item in map(str, inputs)):
        raise ValueError(f"{output} is an input folder: its files would be overwritten; restore into another folder")
    pairs = expand_inputs(inputs, exclude=output)
    if not pairs:
        raise ValueError(f"no images or videos found in {', '.join(map(str, inputs))} "
                         f"(readable: {' '.join(sorted(IMAGE_EXTENSIONS | VIDEO_EXTENSIONS))})")
    single_file = len(pairs) == 1 and output.suffix.lower() in IMAGE_EXTENSIONS | VIDEO_EXTENSIONS
    if not single_file and output.exists() and not output.is_dir():
        raise ValueError(f"{output} is a file: with {len(pairs)} inputs the output must be a folder")
    if len(pairs) > 1 and output.suffix.lower() in IMAGE_EXTENSIONS | VIDEO_EXTENSIONS and not output.is_dir():
        raise ValueError(f"{len(pairs)} inputs need an output folder, and {output} looks like a file name")
    if len(pairs) == 1 and not single_file and output.suffix and not output.is_dir():
        log.warning("%s: %r is not an image or video suffix vidrestore writes, so this is a folder", output, output.suffix)
    from vidrestore.video import VIDEO_OUTPUT_SUFFIXES, restore_video

    report = RestoreReport()
    # Temporary files a run killed while writing these images left (one scan per output folder).
    remove_stale_partials(output if single_file else output / relative for source, relative in pairs
                          if source.suffix.lower() in IMAGE_EXTENSIONS)
    claimed: dict[Path, Path] = {}  # output → the input restored into it
    named = {Path(item).resolve() for item in map(str, inputs) if Path(item).is_file()}
    for source, relative in tqdm(pairs, desc="restore", unit="file", disable=not progress or len(pairs) < 2):
        target = output if single_file else output / relative
        renamed = (not single_file and source.suffix.lower() in VIDEO_EXTENSIONS
                   and target.suffix.lower() not in VIDEO_OUTPUT_SUFFIXES)
        if renamed:
            target = target.with_suffix(".mkv")
        if source.resolve() == target.resolve():
            report.failed.append((source, "output would overwrite the input"))
            continue
        first = claimed.setdefault(target.resolve(), source)
        if first.resolve() == source.resolve() and first is not source:
            continue  # the same file named twice (a file and a glob that matches it): restored once
        if first is not source:
            report.failed.append((source, f"its output {target} is also {first}'s; restore them into separate folders"))
            continue
        if target.is_dir():  # found now, not when the finished file is moved into place
            report.failed.append((source, f"its output {target} is a folder; remove it or name another output"))
            continue
        if skip_existing and target.exists():
            report.skipped.append(source)
            continue
        try:
            suffix = source.suffix.lower()
            if suffix in VIDEO_EXTENSIONS:
                video = restore_video(source, target, restorer, **(video_options or {}))
                if video.incomplete:
                    report.incomplete.append((source, video.incomplete))
            elif suffix in IMAGE_EXTENSIONS:
                restore_image_file(source, target, restorer)
            else:
                raise MediaError(source, f"unsupported file type {suffix!r}")
            report.done.append(source)
            if renamed:  # said once it is so (an audio-only file is not restored at all)
                log.warning("%s: %s video cannot be written; restored as %s", source, source.suffix, target.name)
        except NoVideoStreamError as exc:
            if source.resolve() in named:
                log.error("%s", exc)
                report.failed.append((source, exc.reason))
            else:  # found in a folder: audio alone under a video suffix (.3gp voice memos, RealAudio, WMA)
                log.warning("%s: %s", source, NoVideoStreamError.LEFT_ALONE)
                report.skipped.append(source)
        except VidrestoreError as exc:
            log.error("%s", exc)
            # A MediaError about the input already starts with its path; the report adds it once.
            same_file = isinstance(exc, MediaError) and exc.path.resolve() == source.resolve()
            report.failed.append((source, exc.reason if same_file else str(exc)))
        except OSError as exc:  # the output side: a file where a folder should be, permissions, a full disk
            log.error("%s: %s", source, exc)
            report.failed.append((source, str(exc)))
        except Exception as exc:  # a bug: reported with its traceback, and the other files still go on
            log.exception("%s: unexpected error", source)
            report.failed.append((source, f"unexpected error ({type(exc).__name__}: {exc}); please report it"))
    return report
