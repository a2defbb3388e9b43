"""Read the files inside a compiled Qt resource bundle (``.rcc``, as made by ``rcc -binary``).

Some Debian packages (GCompris) ship their pictures only inside such bundles. The format
(Qt's ``qresource.cpp``): a big-endian header ``qres``, version, and offsets of the tree, the
data and the names; tree nodes are 14 bytes (22 from version 2: plus a modification time),
directories list their children's node indices, files point into the data area, where each
blob is a 4-byte length then the bytes (zlib-compressed with a 4-byte size prefix when the
node's flag 1 is set; zstd, flag 4, is not supported and such files are skipped).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator

from vidrestore.errors import VidrestoreError

__all__ = ["read_rcc"]

_COMPRESSED, _DIRECTORY, _ZSTD = 0x01, 0x02, 0x04


def read_rcc(blob: bytes) -> Iterator[tuple[str, bytes]]:
    """Yield ``(path, content)`` for every file in the bundle ``blob``, depth first."""
    if len(blob) < 20 or blob[:4] != b"qres":
        raise VidrestoreError("not a Qt resource bundle (no 'qres' header)")
    version, tree, data, names = struct.unpack_from(">IIII", blob, 4)
    if version not in (1, 2, 3):
        raise VidrestoreError(f"Qt resource bundle version {version} is not supported")
    node_size = 14 if version == 1 else 22

    def name_of(offset: int) -> str:
        (length,) = struct.unpack_from(">H", blob, names + offset)
        start = names + offset + 6
        return blob[start : start + 2 * length].decode("utf-16-be")

    def walk(index: int, prefix: str) -> Iterator[tuple[str, bytes]]:
        node = tree + index * node_size
        name_offset, flags = struct.unpack_from(">IH", blob, node)
        name = name_of(name_offset) if index else ""
        path = f"{prefix}/{name}" if prefix else name
        if flags & _DIRECTORY:
            count, first = struct.unpack_from(">II", blob, node + 6)
            for child in range(first, first + count):
                yield from walk(child, path)
            return
        if flags & _ZSTD:
            return
        (data_offset,) = struct.unpack_from(">I", blob, node + 10)
        (size,) = struct.unpack_from(">I", blob, data + data_offset)
        content = blob[data + data_offset + 4 : data + data_offset + 4 + size]
        if len(content) != size:
            raise VidrestoreError(f"corrupt Qt resource bundle: {path} is cut short ({len(content)} of {size} bytes)")
        if flags & _COMPRESSED:
            content = zlib.decompress(content[4:])
        yield path, content

    try:
        yield from walk(0, "")
    except (struct.error, zlib.error, UnicodeDecodeError, RecursionError) as exc:
        raise VidrestoreError(f"corrupt Qt resource bundle: {exc}") from exc
