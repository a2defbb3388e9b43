"""File-system helpers shared by image and video I/O: input checks and atomic output.

Every reader starts with :func:`require_file` so a missing, empty or non-regular file gets the
same clear error whatever the codec. Every writer produces its output under a temporary name
in the destination folder and renames it into place only once it is complete, so an
interrupted run never leaves a half-written file under the final name.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import secrets
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from vidrestore.errors import CorruptMediaError, MediaError, UnsupportedFormatError

logger = logging.getLogger(__name__)

__all__ = ["atomic_output", "changed_settings", "folders_holding", "hold_folder", "make_folder", "record_settings", "partial_path", "remove_stale_partials", "require_file", "unidentified_error"]


def require_file(path: str | Path) -> Path:
    """Return ``path`` as a :class:`Path` after checking it is a non-empty regular file.

    Raises:
        MediaError: the path does not exist or is not a regular file.
        CorruptMediaError: the file is empty.
    """
    path = Path(path)
    if not path.exists():
        raise MediaError(path, "file not found")
    if not path.is_file():
        raise MediaError(path, "not a regular file")
    if path.stat().st_size == 0:
        raise CorruptMediaError(path, "file is empty")
    return path


def unidentified_error(path: Path, known_suffixes: frozenset[str], kind: str) -> MediaError:
    """The error for bytes no decoder recognises.

    A name that promises a format we read (``photo.png``) means the data is damaged:
    :class:`CorruptMediaError`. Any other name (``notes.txt``) means the file simply is not a
    supported ``kind``: :class:`UnsupportedFormatError`.
    """
    if path.suffix.lower() in known_suffixes:
        return CorruptMediaError(path, f"not a readable {kind}: data is damaged or not in the format its name says")
    return UnsupportedFormatError(path, f"not a supported {kind} format")


def partial_path(path: Path, *, unique: bool = False) -> Path:
    """The temporary name a file is built under: ``dir/.name[.token].partial.ext``.

    Same folder (so the final rename is atomic) and same suffix (so format-guessing encoders such
    as FFmpeg's muxers pick the right container). ``unique`` adds a random token for writers
    that may run concurrently on one target.
    """
    token = f".{secrets.token_hex(4)}" if unique else ""
    return path.with_name(f".{path.stem}{token}.partial{path.suffix}")


def make_folder(folder: Path) -> None:
    """``folder`` and its parents, as ``mkdir -p``; a file in the way is named as such (not
    "File exists" or "Not a directory")."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as error:
        blocker = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)
        if blocker is None:
            raise
        raise NotADirectoryError(errno.ENOTDIR, f"{blocker} is a file, not a folder", str(folder)) from error


class FolderInUse(OSError):
    """Another process holds the folder (:func:`hold_folder`)."""


def hold_folder(folder: Path) -> IO[str]:
    """Claim ``folder`` (created if missing) for this process: an exclusive lock on ``folder/.lock``
    (flock: released when the returned file is closed or the process ends, even killed, so it is
    never stale). Raises :class:`FolderInUse`, naming the holder's process id, when another
    process holds it. Without ``fcntl`` (Windows) nothing is locked."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return open(os.devnull)  # noqa: SIM115 - something to close
    lock = Path(folder) / ".lock"
    for _ in range(8):
        os.makedirs(folder, exist_ok=True)
        handle = open(lock, "a+")  # noqa: SIM115 - held for the caller's lifetime
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip()
            handle.close()
            raise FolderInUse(errno.EBUSY, f"in use by another process{f' ({holder})' if holder else ''}",
                              str(folder)) from None
        except OSError as error:  # a file system without locks (some NFS, SMB and FUSE mounts)
            logger.warning("%s: cannot be locked (%s); make sure no other run writes there", folder,
                           error.strerror or error)
            return handle
        if _is_file(handle, lock):
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()}")
            handle.flush()
            return handle
        handle.close()  # its holder removed the folder (a finished restore) as this opened it: the new one counts
    raise FolderInUse(errno.EBUSY, "removed and made again while claimed", str(folder))


def _is_file(handle: IO[str], path: Path) -> bool:
    """Whether the open ``handle`` is the file at ``path`` now (not one removed since it was opened)."""
    try:
        here, there = os.fstat(handle.fileno()), os.stat(path)
    except OSError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def remove_stale_partials(paths: Iterable[Path]) -> None:
    """Delete the temporary files (:func:`partial_path`, with or without a token) that writers of
    ``paths`` killed mid-write left beside them: their random names are never reused. One scan
    per folder. Call before new writes of ``paths`` by the one process that owns them (a run's
    outputs, a training folder)."""
    by_folder: dict[Path, set[tuple[str, str]]] = {}
    for path in map(Path, paths):
        by_folder.setdefault(path.parent, set()).add((path.stem, path.suffix))
    for folder, names in by_folder.items():
        with contextlib.suppress(OSError):
            for entry in os.scandir(folder):
                match = _PARTIAL.fullmatch(entry.name)
                # ".a.12345678.partial.png" is a.png's (a token) or a.12345678.png's (none).
                if match and ((match["stem"], match["suffix"]) in names
                              or (match["stem"] + (match["token"] or ""), match["suffix"]) in names):
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)


_PARTIAL = re.compile(r"\.(?P<stem>.*?)(?P<token>\.[0-9a-f]{8})?\.partial(?P<suffix>\.[^.]*|)")


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary path next to ``path``; rename it onto ``path`` if the block succeeds.

    The block creates the file (with the usual permissions, unlike ``tempfile.mkstemp``'s 0600).
    The parent folder is created if needed. If the block raises, the temporary file is deleted
    and ``path`` is left untouched (an existing file there keeps its old contents).
    """
    path = Path(path)
    make_folder(path.parent)
    temporary = partial_path(path, unique=True)
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def changed_settings(path: Path, settings: dict[str, object]) -> list[str] | None:
    """How ``settings`` differ from those :func:`record_settings` wrote to ``path`` ("key old →
    new" each; empty when they are the same), or None when ``path`` holds no such record (absent,
    damaged, or not a JSON object). Tools that add to an output folder use it to refuse mixing
    results made with other settings."""
    try:
        before = json.loads(Path(path).read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(before, dict):
        return None
    return [f"{key} {before.get(key)!r} → {value!r}" for key, value in settings.items() if before.get(key) != value]


def record_settings(path: Path, settings: dict[str, object]) -> None:
    """Write ``settings`` to ``path`` as JSON, atomically (see :func:`changed_settings`)."""
    with atomic_output(path) as temporary:
        temporary.write_text(json.dumps(settings, indent=2) + "\n")


def folders_holding(root: Path, name: str, header: list[str]) -> list[Path]:
    """Folders under ``root`` (itself included) holding a CSV ``name`` whose first line is
    ``header``: earlier outputs of a tool that writes that CSV."""
    found = []
    for csv_file in Path(root).rglob(name):
        try:
            with open(csv_file, newline="") as handle:
                if handle.readline().strip() == ",".join(header):
                    found.append(csv_file.parent.resolve())
        except (OSError, UnicodeDecodeError):
            continue
    return found
