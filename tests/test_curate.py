"""Curation: the background score, and ``vidrestore curate`` on a mixed folder (kept photo,
flat graphic, small image, degraded photo, corrupt file) with its manifest, re-runs and links.

The quality step uses a tiny classifier trained here on synthetic data (see test_quality.py).
"""

from __future__ import annotations

import csv
import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

from test_quality import degrade_to, labelled, photo_like, trained  # noqa: F401  (fixtures)
from vidrestore.cli import main
from vidrestore.curate import MANIFEST_FIELDS, CurateConfig, background_stats, curate
from vidrestore.errors import ModelError
from vidrestore.io import Image, write_image


def flat_graphic(height: int, width: int) -> np.ndarray:
    """A vector-style picture: a few flat colours in big regions."""
    pixels = np.empty((height, width, 3), dtype=np.uint8)
    pixels[:] = (40, 90, 200)
    pixels[height // 2 :, :] = (250, 250, 245)
    y, x = np.mgrid[0:height, 0:width]
    pixels[(y - height // 3) ** 2 + (x - width // 2) ** 2 < (height // 5) ** 2] = (255, 160, 0)
    pixels[height // 8 : height // 4, width // 10 : width // 3] = (20, 20, 20)
    return pixels


def test_background_stats_separates_texture_from_flat_and_gradients():
    constant = np.full((600, 700, 3), 128, dtype=np.uint8)
    stats = background_stats(constant)
    assert stats.content == 0.0 and stats.flat == 1.0 and stats.score == 0.0
    noise = np.random.default_rng(0).integers(0, 256, (600, 700, 3), dtype=np.uint8)
    stats = background_stats(noise)
    assert stats.content == 1.0 and stats.flat < 0.01 and stats.score > 0.99
    ramp = np.linspace(0, 1, 800, dtype=np.float32)[None, :, None].repeat(600, 0).repeat(3, 2)
    assert background_stats(ramp).score < 0.05  # a smooth gradient wallpaper has no content
    assert background_stats(flat_graphic(600, 600)).score < 0.05
    photo = photo_like(3, 600, 640)
    assert background_stats(photo).score > 0.5
    # Same figure from uint8, uint16 and float input.
    as_uint16 = photo.astype(np.uint16) * 257
    assert background_stats(as_uint16) == background_stats(photo)
    assert background_stats(photo.astype(np.float32) / 255) == background_stats(photo)
    with pytest.raises(ValueError):
        background_stats(photo[..., 0])


@pytest.fixture()
def mixed(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    write_image(folder / "photos/keeper.png", Image(pixels=photo_like(11, 600, 640)))
    write_image(folder / "graphic.png", Image(pixels=flat_graphic(600, 600)))
    write_image(folder / "small.png", Image(pixels=photo_like(12, 300, 400)))
    write_image(folder / "photos/degraded.png", Image(pixels=degrade_to(photo_like(13, 600, 600), "poor", 13)))
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 64)
    (folder / "readme.txt").write_text("not an image: ignored")
    return folder


def _tree_digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _manifest(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "manifest.csv", newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == MANIFEST_FIELDS
        return {row["path"]: row for row in reader}


def test_curate_keeps_exactly_the_good_photo(mixed, trained, tmp_path, capsys):
    model = str(trained[0] / "quality.safetensors")
    before = _tree_digest(mixed)
    out = tmp_path / "out"
    assert main(["curate", str(mixed), str(out), "--model", model, "--jobs", "2"]) == 0
    assert "kept 1, rejected 4" in capsys.readouterr().out
    rows = _manifest(out)
    assert set(rows) == {"photos/keeper.png", "graphic.png", "small.png", "photos/degraded.png", "broken.jpg"}
    keeper = rows["photos/keeper.png"]
    assert (keeper["decision"], keeper["reason"], keeper["class"]) == ("keep", "", "good")
    assert (keeper["width"], keeper["height"]) == ("640", "600") and float(keeper["background"]) >= 0.2
    p = [float(keeper[k]) for k in ("p_poor", "p_medium", "p_good")]
    assert sum(p) == pytest.approx(1.0, abs=1e-3) and p[2] == max(p)
    assert (rows["graphic.png"]["decision"], rows["graphic.png"]["reason"]) == ("reject", "flat_background")
    assert float(rows["graphic.png"]["background"]) < 0.2 and rows["graphic.png"]["p_good"] == ""
    assert (rows["small.png"]["reason"], rows["small.png"]["width"], rows["small.png"]["height"]) == ("too_small", "400", "300")
    degraded = rows["photos/degraded.png"]
    assert degraded["decision"] == "reject" and degraded["reason"] == f"low_quality:{degraded['class']}"
    assert degraded["class"] in ("poor", "medium") and float(degraded["background"]) >= 0.2
    assert rows["broken.jpg"]["decision"] == "reject" and rows["broken.jpg"]["reason"].startswith("unreadable:")
    assert "\n" not in rows["broken.jpg"]["reason"]
    # Exactly the keeper, at its relative path, byte for byte; inputs untouched.
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == ["curate.json", "manifest.csv", "photos/keeper.png"]
    assert (out / "photos/keeper.png").read_bytes() == (mixed / "photos/keeper.png").read_bytes()
    assert _tree_digest(mixed) == before

    # A re-run judges nothing again; a kept file deleted since is put back.
    (out / "photos/keeper.png").unlink()
    manifest_before = (out / "manifest.csv").read_text()
    counts = curate(mixed, out, CurateConfig(model=model), jobs=1, progress=False)
    assert counts["skipped"] == 5 and counts["kept"] == counts["rejected"] == 0
    assert (out / "manifest.csv").read_text() == manifest_before and (out / "photos/keeper.png").is_file()
    # A new file is judged on the next run, the others still skipped.
    write_image(mixed / "late.png", Image(pixels=photo_like(14, 256, 256)))
    counts = curate(mixed, out, CurateConfig(model=model), jobs=1, progress=False)
    assert (counts["skipped"], counts["too_small"]) == (5, 1) and _manifest(out)["late.png"]["reason"] == "too_small"


def test_min_class_poor_needs_no_model_and_links(mixed, tmp_path):
    out = tmp_path / "out"
    counts = curate(mixed, out, CurateConfig(min_class="poor", link=True, model=None), jobs=1, progress=False)
    assert (counts["kept"], counts["flat_background"], counts["too_small"], counts["unreadable"]) == (2, 1, 1, 1)
    rows = _manifest(out)
    assert rows["photos/degraded.png"]["decision"] == "keep" and rows["photos/degraded.png"]["p_poor"] == ""
    assert os.stat(out / "photos/keeper.png").st_ino == os.stat(mixed / "photos/keeper.png").st_ino


def test_thresholds_and_model_errors(mixed, tmp_path, capsys):
    counts = curate(mixed, tmp_path / "a", CurateConfig(min_class="poor", min_size=200, min_background=0.0),
                    jobs=1, progress=False)
    assert counts["kept"] == 4 and counts["unreadable"] == 1
    with pytest.raises(ModelError, match="not found"):
        curate(mixed, tmp_path / "b", CurateConfig(model=str(tmp_path / "missing.safetensors")), progress=False)
    assert not (tmp_path / "b").exists()  # fails before any work
    with pytest.raises(SystemExit):
        main(["curate", str(mixed), str(tmp_path / "c"), "--min-class", "great"])
    assert "invalid choice" in capsys.readouterr().err
    with pytest.raises(ValueError):
        CurateConfig(min_background=2.0)
    with pytest.raises(ValueError, match="differ"):
        curate(mixed, mixed, CurateConfig(min_class="poor"), progress=False)


def test_videos_are_left_out_and_counted(mixed, tmp_path, capsys):
    (mixed / "clip.mp4").write_bytes(b"not judged: curate takes photos only")
    assert main(["curate", str(mixed), str(tmp_path / "out"), "--min-class", "poor", "--jobs", "1"]) == 0
    assert "videos left out: 1 (curate judges photos only)" in capsys.readouterr().out
    assert "clip.mp4" not in _manifest(tmp_path / "out")


def test_a_rerun_with_other_settings_is_refused_and_earlier_outputs_inside_are_not_judged(mixed, tmp_path):
    """A re-run with other thresholds skipped every image already in the manifest, so the folder
    silently followed the first settings; a second output inside IN_DIR judged the first one's
    copies as more photos."""
    out = tmp_path / "out"
    first = curate(mixed, out, CurateConfig(min_class="poor", min_size=200, min_background=0.0), jobs=1, progress=False)
    with pytest.raises(ValueError, match="curated with other settings .*min_size 200 → 500"):
        curate(mixed, out, CurateConfig(min_class="poor", min_background=0.0), jobs=1, progress=False)
    again = curate(mixed, out, CurateConfig(min_class="poor", min_size=200, min_background=0.0, link=True), jobs=1,
                   progress=False)
    assert again["skipped"] == first["kept"] + first["rejected"] and again["kept"] == 0
    inside = curate(mixed, mixed / "kept", CurateConfig(min_class="poor", min_size=200, min_background=0.0), jobs=1,
                    progress=False)
    second = curate(mixed, mixed / "kept2", CurateConfig(min_class="poor", min_size=200, min_background=0.0), jobs=1,
                    progress=False)
    assert second["kept"] == inside["kept"] == first["kept"]
    assert not (mixed / "kept2" / "kept").exists()


def test_an_input_folder_that_is_itself_a_curate_output_is_curated_again(mixed, tmp_path):
    first = tmp_path / "first"
    kept = curate(mixed, first, CurateConfig(min_class="poor", min_size=200, min_background=0.0), jobs=1,
                  progress=False)["kept"]
    again = curate(first, tmp_path / "second", CurateConfig(min_class="poor", min_size=200, min_background=0.0),
                   jobs=1, progress=False)
    assert again["kept"] == kept > 0
