"""The demo corpus builder on hand-made Debian packages and Qt resource bundles (no network)."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from vidrestore.corpus import build_corpus, group_key
from vidrestore.errors import VidrestoreError
from vidrestore.io.qrc import read_rcc


def make_rcc(files: dict[str, bytes], *, compress: set[str] = frozenset()) -> bytes:
    """A version-3 Qt resource bundle holding ``files`` (paths with at most one directory level),
    laid out as Qt's ``rcc -binary`` does: header, data, names, tree of 22-byte nodes."""
    dirs: dict[str, dict[str, bytes]] = {}
    top: dict[str, bytes] = {}
    for path, content in files.items():
        if "/" in path:
            folder, name = path.split("/", 1)
            dirs.setdefault(folder, {})[name] = content
        else:
            top[path] = content
    names, name_offsets = bytearray(), {}

    def name(text: str) -> int:
        if text not in name_offsets:
            name_offsets[text] = len(names)
            names.extend(struct.pack(">HI", len(text), 0) + text.encode("utf-16-be"))
        return name_offsets[text]

    data = bytearray()

    def blob(path: str, content: bytes) -> int:
        offset = len(data)
        if path in compress:
            content = struct.pack(">I", len(content)) + zlib.compress(content)
        data.extend(struct.pack(">I", len(content)) + content)
        return offset

    # Node order: root, its children (dirs then files), then each dir's children.
    top_level = [(d, None) for d in sorted(dirs)] + [(f, top[f]) for f in sorted(top)]
    nodes = [(0, 0x02, len(top_level), 1)]
    next_index = 1 + len(top_level)
    pending = []
    for entry, content in top_level:
        if content is None:
            children = sorted(dirs[entry].items())
            nodes.append((name(entry), 0x02, len(children), next_index))
            pending.append((entry, children))
            next_index += len(children)
        else:
            nodes.append((name(entry), 0x01 if entry in compress else 0, blob(entry, content)))
    for folder, children in pending:
        for child, content in children:
            path = f"{folder}/{child}"
            nodes.append((name(child), 0x01 if path in compress else 0, blob(path, content)))
    tree = bytearray()
    for node in nodes:
        if node[1] & 0x02:
            tree.extend(struct.pack(">IHII", *node))
        else:
            tree.extend(struct.pack(">IHHHI", node[0], node[1], 0, 0, node[2]))
        tree.extend(struct.pack(">Q", 0))
    header_size = 24
    data_offset = header_size
    names_offset = data_offset + len(data)
    tree_offset = names_offset + len(names)
    header = b"qres" + struct.pack(">IIIII", 3, tree_offset, data_offset, names_offset, 0)
    return header + bytes(data) + bytes(names) + bytes(tree)


def png(height: int, width: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    image = cv2.GaussianBlur(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), (0, 0), 2)
    ok, encoded = cv2.imencode(".png", image)
    assert ok
    return encoded.tobytes()


def test_read_rcc_lists_files_in_folders_and_inflates_compressed_ones() -> None:
    files = {"a.png": png(8, 8, 0), "pics/b.webp": b"webp-bytes" * 50, "pics/c.qml": b"Item {}"}
    bundle = make_rcc(files, compress={"pics/b.webp"})
    assert dict(read_rcc(bundle)) == files


def test_read_rcc_rejects_what_is_not_a_bundle_or_is_cut_short() -> None:
    with pytest.raises(VidrestoreError, match="qres"):
        list(read_rcc(b"PK\x03\x04 not a bundle at all"))
    bundle = make_rcc({"pics/b.png": png(8, 8, 1)})
    with pytest.raises(VidrestoreError, match="corrupt"):
        list(read_rcc(bundle[: len(bundle) - 30]))  # the tree cut off
    oversized = bundle[:24] + struct.pack(">I", 1 << 30) + bundle[28:]  # the only member claims 1 GiB
    with pytest.raises(VidrestoreError, match="cut short"):
        list(read_rcc(oversized))


def test_group_key_folds_resolutions_of_one_picture() -> None:
    assert group_key(Path("usr/share/backgrounds/mate/abstract/Elephants_3840x2160.jpg")) == "backgrounds/mate/abstract/Elephants"
    assert group_key(Path("usr/share/wallpapers/Kay/contents/images_dark/5120x2880.png")) == "wallpapers/Kay/images_dark"


def make_deb(tmp_path: Path) -> Path:
    """``photos-test.deb``: a picture at two resolutions, a copy, a link, a broken JPEG and a Qt bundle."""
    root = tmp_path / "pkg"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN/control").write_text(
        "Package: photos-test\nVersion: 1.0-1\nArchitecture: all\nMaintainer: t <t@example.org>\nDescription: test\n"
    )
    share = root / "usr/share/photos-test"
    share.mkdir(parents=True)
    (share / "Lake_1920x1080.png").write_bytes(png(108, 192, 2))
    (share / "Lake_960x540.png").write_bytes(png(54, 96, 3))  # same picture, smaller: dropped
    (share / "copy.png").write_bytes((share / "Lake_1920x1080.png").read_bytes())  # identical bytes: dropped
    (share / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 40)  # unreadable: skipped
    (share / "link.png").symlink_to("Lake_1920x1080.png")
    (share / "animals.rcc").write_bytes(make_rcc({"res/owl.png": png(40, 60, 4), "res/Main.qml": b"Item {}"}, compress={"res/owl.png"}))
    deb = tmp_path / "photos-test.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(root), str(deb)], check=True, capture_output=True)
    return deb


needs_dpkg = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")


@needs_dpkg
def test_build_corpus_from_a_deb_unpacks_bundles_dedupes_and_skips_bad_files(tmp_path: Path) -> None:
    deb = make_deb(tmp_path)
    entries = build_corpus(tmp_path / "corpus", debs=[deb], val_fraction=0.0)

    by_group = {e.group: e for e in entries}
    assert set(by_group) == {"photos-test/Lake", "photos-test/animals/res/owl"}
    assert (by_group["photos-test/Lake"].width, by_group["photos-test/Lake"].height) == (192, 108)
    owl = by_group["photos-test/animals/res/owl"]
    assert owl.package == "photos-test" and owl.version == "1.0-1" and (owl.width, owl.height) == (60, 40)
    assert cv2.imread(str(tmp_path / "corpus" / owl.file)).shape == (40, 60, 3)
    manifest = json.loads((tmp_path / "corpus/manifest.json").read_text())
    assert sorted(f["file"] for f in manifest["files"]) == sorted(e.file for e in entries)
    assert manifest["packages"] == ["photos-test=1.0-1"]  # what was unpacked (it listed the default packages)
    assert all(e.split == "train" for e in entries)


@needs_dpkg
def test_a_deb_without_pictures_is_an_error(tmp_path: Path, capsys) -> None:
    from vidrestore.cli import main

    root = tmp_path / "pkg"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN/control").write_text(
        "Package: docs-test\nVersion: 2\nArchitecture: all\nMaintainer: t <t@example.org>\nDescription: test\n")
    (root / "usr/share/doc/docs-test").mkdir(parents=True)
    (root / "usr/share/doc/docs-test/README").write_text("no pictures here")
    deb = tmp_path / "docs-test.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(root), str(deb)], check=True, capture_output=True)
    assert main(["corpus", str(tmp_path / "corpus"), "--deb", str(deb)]) == 2
    assert "no images in" in capsys.readouterr().err
    # Into a folder holding a corpus: the failure leaves that corpus as it was.
    build_corpus(tmp_path / "full", debs=[make_deb(tmp_path / "other")], val_fraction=0.0)
    before = sorted(p.relative_to(tmp_path / "full").as_posix() for p in (tmp_path / "full").rglob("*") if p.is_file())
    assert main(["corpus", str(tmp_path / "full"), "--deb", str(deb)]) == 2
    assert sorted(p.relative_to(tmp_path / "full").as_posix() for p in (tmp_path / "full").rglob("*") if p.is_file()) == before


@needs_dpkg
def test_a_rerun_with_another_split_leaves_no_picture_in_both(tmp_path: Path) -> None:
    deb, out = make_deb(tmp_path), tmp_path / "corpus"
    assert {e.split for e in build_corpus(out, debs=[deb], val_fraction=0.0)} == {"train"}
    entries = build_corpus(out, debs=[deb], val_fraction=1.0)
    assert {e.split for e in entries} == {"val"}
    on_disk = sorted(p.relative_to(out).as_posix() for split in ("train", "val") for p in (out / split).rglob("*") if p.is_file())
    assert on_disk == sorted(e.file for e in entries)


@needs_dpkg
def test_bad_deb_or_val_fraction_is_a_one_line_error_before_any_output(tmp_path: Path, capsys) -> None:
    from vidrestore.cli import main

    (tmp_path / "text.deb").write_text("not a Debian package")
    cases = [(["--deb", str(tmp_path / "missing.deb")], "no such .deb file"),
             (["--deb", str(tmp_path / "text.deb")], "not a readable Debian package"),
             (["--deb", str(tmp_path / "text.deb"), "--val-fraction", "5"], "val_fraction must be in [0, 1]"),
             (["--deb", str(tmp_path / "text.deb"), "--val-fraction", "-1"], "val_fraction must be in [0, 1]")]
    for argv, message in cases:
        assert main(["corpus", str(tmp_path / "corpus"), *argv]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "corpus").exists()
