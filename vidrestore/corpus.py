"""Build the demo training corpus from Debian's wallpaper packages.

``vidrestore corpus OUT_DIR`` runs ``apt-get download`` for the packages (or takes ``.deb``
files already downloaded), unpacks them with ``dpkg -x``, and collects their images:

- symlinks resolved and identical files de-duplicated (SHA-256);
- the same picture at several resolutions (``Elephants_3840x2160.jpg``, Plasma's
  ``contents/images/<W>x<H>.*``) grouped, and only the largest kept;
- preview thumbnails (``screenshot.*``) skipped.

Groups are split into train/validation by a hash of the group name, so no picture (nor another
resolution of it) is in both. ``OUT_DIR/manifest.json`` records each file's package, version,
original path, size and hash; the packages' copyright files are copied to ``OUT_DIR/licenses``.
A re-run into the same folder (say with another ``val_fraction``) replaces the earlier corpus:
pictures it put in the other split, or that are no longer part of the corpus, are removed.
Curation (photo vs graphic, quality) is a separate step: ``vidrestore curate``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from vidrestore.io.listing import IMAGE_EXTENSIONS
from vidrestore.errors import VidrestoreError

__all__ = ["DEFAULT_PACKAGES", "CorpusEntry", "build_corpus", "group_key"]

log = logging.getLogger(__name__)

DEFAULT_PACKAGES = ("plasma-workspace-wallpapers", "mate-backgrounds", "gcompris-qt-data", "python3-skimage")
_RESOLUTION = re.compile(r"[_-]?\d{3,5}x\d{3,5}$")


@dataclass(frozen=True)
class CorpusEntry:
    file: str  # relative to the corpus root
    split: str
    group: str
    package: str
    version: str
    source_path: str  # path inside the package
    width: int
    height: int
    sha256: str


def group_key(relative: Path) -> str:
    """The picture a file shows, independent of its resolution.

    ``usr/share/wallpapers/Kay/contents/images_dark/5120x2880.png`` → ``wallpapers/Kay/images_dark``;
    ``usr/share/backgrounds/mate/abstract/Elephants_3840x2160.jpg`` → ``backgrounds/mate/abstract/Elephants``.
    """
    parts = list(relative.parts)
    if parts[:2] == ["usr", "share"]:
        parts = parts[2:]
    if "contents" in parts:
        index = parts.index("contents")
        return "/".join(parts[:index] + parts[index + 1 : -1])
    stem = _RESOLUTION.sub("", Path(parts[-1]).stem)
    return "/".join(parts[:-1] + [stem])


_VARIANT = re.compile(r"(/images)?([_-](dark|light))?$", re.IGNORECASE)


def _split_of(group: str, val_fraction: float) -> str:
    """Light/dark variants of one design share a split (they are the same picture)."""
    scene = _VARIANT.sub("", group).lower()
    bucket = int(hashlib.sha256(scene.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "val" if bucket < val_fraction else "train"


def _download(packages: tuple[str, ...], into: Path) -> list[Path]:
    try:
        subprocess.run(["apt-get", "download", *packages], cwd=into, check=True, capture_output=True, text=True)
    except FileNotFoundError as exc:
        raise VidrestoreError("apt-get not found: pass the .deb files with --deb") from exc
    except subprocess.CalledProcessError as exc:
        raise VidrestoreError(f"apt-get download {' '.join(packages)} failed: {exc.stderr.strip()}") from exc
    return sorted(into.glob("*.deb"))


def _dpkg_deb(deb: Path, *args: str) -> str:
    """``dpkg-deb ARGS`` on ``deb``; its stdout, or a one-line error naming the file."""
    try:
        result = subprocess.run(["dpkg-deb", *args], check=True, capture_output=True, text=True)
    except FileNotFoundError as exc:
        raise VidrestoreError("dpkg-deb not found (install dpkg)") from exc
    except subprocess.CalledProcessError as exc:
        raise VidrestoreError(f"{deb}: not a readable Debian package ({' '.join(exc.stderr.split())})") from exc
    return result.stdout


def _deb_field(deb: Path, field: str) -> str:
    return _dpkg_deb(deb, "-f", str(deb), field).strip()


def _previous_files(out_dir: Path) -> set[str]:
    """The split files (``train/…``, ``val/…``) an earlier run's manifest lists."""
    try:
        files = json.loads((out_dir / "manifest.json").read_text())["files"]
        names = {entry["file"] for entry in files}
    except (OSError, ValueError, KeyError, TypeError):
        return set()
    return {n for n in names if isinstance(n, str) and n.split("/")[0] in ("train", "val") and ".." not in n.split("/")}


def _unpack_rcc(bundle: Path) -> None:
    """Write the images inside a Qt resource bundle next to it (``x.rcc`` → ``x/<inner path>``)."""
    from vidrestore.io.qrc import read_rcc

    try:
        members = list(read_rcc(bundle.read_bytes()))
    except VidrestoreError as exc:
        log.warning("%s: cannot read the Qt resource bundle (%s); skipped", bundle, exc)
        return
    for inner, content in members:
        if Path(inner).suffix.lower() in IMAGE_EXTENSIONS and ".." not in Path(inner).parts:
            target = bundle.with_suffix("") / inner
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)


def _image_size(path: Path) -> tuple[int, int] | None:
    """(width, height), or None (with a warning) for a file that is not a whole, readable image."""
    from vidrestore.io.images import image_size

    try:
        return image_size(path, verify=True)
    except VidrestoreError as exc:
        log.warning("%s; skipped", exc)
        return None


def build_corpus(
    out_dir: str | Path,
    *,
    packages: tuple[str, ...] = DEFAULT_PACKAGES,
    debs: list[Path] | None = None,
    val_fraction: float = 0.2,
) -> list[CorpusEntry]:
    """Download/unpack ``packages`` (or use ``debs``) and write the split corpus to ``out_dir``."""
    from vidrestore.io._files import atomic_output

    out_dir = Path(out_dir)
    if not 0.0 <= val_fraction <= 1.0:
        raise ValueError(f"val_fraction must be in [0, 1], got {val_fraction}")
    for deb in debs or []:
        if not Path(deb).is_file():
            raise FileNotFoundError(f"{deb}: no such .deb file")
    with tempfile.TemporaryDirectory(prefix="vidrestore-corpus-") as tmp:
        work = Path(tmp)
        debs = [Path(d).resolve() for d in debs] if debs else _download(packages, work)
        fields = [(deb, _deb_field(deb, "Package"), _deb_field(deb, "Version")) for deb in debs]  # bad .deb: fail now
        candidates: dict[str, list[tuple[Path, Path, str, str]]] = {}
        seen_hashes: set[str] = set()
        licenses = out_dir / "licenses"
        licenses.mkdir(parents=True, exist_ok=True)
        for deb, package, version in fields:
            root = work / package
            _dpkg_deb(deb, "-x", str(deb), str(root))
            for copyright_file in root.glob("usr/share/doc/*/copyright"):
                shutil.copyfile(copyright_file, licenses / f"{package}.copyright")
            for bundle in sorted(root.rglob("*.rcc")):
                _unpack_rcc(bundle)
            for path in sorted(root.rglob("*")):
                if path.is_symlink() or not path.is_file():
                    continue  # links point at files we visit anyway
                if path.suffix.lower() not in IMAGE_EXTENSIONS or path.stem.lower() == "screenshot":
                    continue
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                if digest in seen_hashes:
                    continue
                seen_hashes.add(digest)
                relative = path.relative_to(root)
                candidates.setdefault(group_key(relative), []).append((path, relative, package + "\t" + version, digest))
        entries = []
        previous = _previous_files(out_dir)
        for group, files in sorted(candidates.items()):
            sized = [(size, p, rel, pv, digest) for p, rel, pv, digest in files if (size := _image_size(p))]
            if not sized:
                continue
            (width, height), path, relative, package_version, digest = max(sized, key=lambda s: s[0][0] * s[0][1])
            package, version = package_version.split("\t")
            split = _split_of(group, val_fraction)
            name = group.replace("/", "__").replace(" ", "_") + path.suffix.lower()
            with atomic_output(out_dir / split / name) as temporary:
                shutil.copyfile(path, temporary)
            # An earlier run may have put this picture in the other split. (The sweep below does
            # too, but only for files a readable manifest lists: a run cut before writing it left none.)
            (out_dir / ("train" if split == "val" else "val") / name).unlink(missing_ok=True)
            entries.append(
                CorpusEntry(
                    file=f"{split}/{name}",
                    split=split,
                    group=group,
                    package=package,
                    version=version,
                    source_path="/" + relative.as_posix(),
                    width=width,
                    height=height,
                    sha256=digest,
                )
            )
    if not entries:  # before the sweep: an earlier corpus in out_dir stays as it was
        raise ValueError(f"no images in {', '.join(str(d) for d in debs)}")
    for stale in previous - {e.file for e in entries}:
        (out_dir / stale).unlink(missing_ok=True)
    used = sorted({f"{package}={version}" for _, package, version in fields})  # what was unpacked, not what was asked
    manifest = {"packages": used, "val_fraction": val_fraction, "files": [asdict(e) for e in entries]}
    with atomic_output(out_dir / "manifest.json") as temporary:  # what the next run's sweep reads
        temporary.write_text(json.dumps(manifest, indent=1) + "\n")
    train, val = sum(e.split == "train" for e in entries), sum(e.split == "val" for e in entries)
    log.info("corpus: %d train, %d val images in %s", train, val, out_dir)
    if not train or (not val and val_fraction > 0):
        log.warning("corpus: %d train and %d val images (val_fraction %g splits whole pictures, not files): "
                    "one split is empty", train, val, val_fraction)
    return entries
