"""``vidrestore restore`` on images: mirrored folders, globs, skip-existing, bad files, and
what images keep (alpha, gray, 16-bit, ICC, EXIF orientation)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image as PILImage
from PIL import ImageCms

from conftest import textured_image, write_audio_only
from vidrestore.io import Image, read_image, write_image
from vidrestore.nets.unet import UNet
from vidrestore.weights import save_generator

TINY = dict(base_channels=8, channel_multipliers=(1, 2), encoder_blocks=(1, 1), decoder_blocks=(1, 1), middle_blocks=1)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = UNet(**TINY)
    torch.nn.init.normal_(model.tail.weight, std=0.01)
    path = tmp_path_factory.mktemp("m") / "tiny.safetensors"
    save_generator(path, model, TINY)
    return path


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vidrestore.cli", "restore", *args], capture_output=True, text=True, timeout=300)


def test_folder_tree_mirrored_bad_file_reported_and_skip_existing(model_path, tmp_path):
    src = tmp_path / "in"
    rgba = np.dstack([textured_image(1, 40, 56), np.linspace(0, 255, 40 * 56).reshape(40, 56).astype(np.uint8)])
    write_image(src / "a" / "rgba.png", Image(pixels=rgba))
    gray16 = (textured_image(2, 48, 40)[..., :1].astype(np.uint16) * 257 + 3)
    write_image(src / "gray16.png", Image(pixels=gray16))
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    write_image(src / "b" / "photo.jpg", Image(pixels=textured_image(3, 64, 48), icc_profile=icc))
    (src / "b" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    out = tmp_path / "out"
    result = run(str(src), "-o", str(out), "--model", str(model_path))
    assert result.returncode == 1, result.stderr
    assert "broken.png" in result.stderr and "restored 3" in result.stdout and "failed 1" in result.stdout
    restored_rgba = read_image(out / "a" / "rgba.png").pixels
    assert restored_rgba.shape == rgba.shape and np.array_equal(restored_rgba[..., 3], rgba[..., 3]), "alpha carried unchanged"
    restored_gray = read_image(out / "gray16.png").pixels
    assert restored_gray.dtype == np.uint16 and restored_gray.shape == gray16.shape
    assert np.abs(restored_gray.astype(int) - gray16.astype(int)).mean() < 2000  # a tiny near-identity model
    assert len(np.unique(restored_gray % 257)) > 10, "16-bit values, not 8-bit scaled up"
    assert read_image(out / "b" / "photo.jpg").icc_profile == icc
    before = (out / "gray16.png").stat().st_mtime_ns
    again = run(str(src), "-o", str(out), "--model", str(model_path), "--skip-existing")
    assert "skipped 3" in again.stdout and (out / "gray16.png").stat().st_mtime_ns == before


def test_exif_orientation_is_applied_and_reset(model_path, tmp_path):
    pixels = textured_image(4, 30, 50)
    pixels[:5, :5] = [255, 0, 0]  # a red marker at the stored top-left
    image = PILImage.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    image.save(tmp_path / "rot.jpg", exif=exif.tobytes(), quality=98)
    result = run(str(tmp_path / "rot.jpg"), "-o", str(tmp_path / "out.png"), "--model", str(model_path))
    assert result.returncode == 0, result.stderr
    out = read_image(tmp_path / "out.png")
    assert out.pixels.shape[:2] == (50, 30), "displayed orientation (portrait)"
    assert out.pixels[2, -3, 0] > 180 and out.pixels[2, -3, 1] < 90, "marker moved to the top-right"
    stored = PILImage.open(tmp_path / "out.png").getexif()
    assert stored.get(0x0112, 1) == 1


def test_glob_and_single_file_and_refuse_overwrite(model_path, tmp_path):
    for index in range(2):
        write_image(tmp_path / f"p{index}.png", Image(pixels=textured_image(index, 32, 32)))
    result = run(str(tmp_path / "p*.png"), "-o", str(tmp_path / "g"), "--model", str(model_path))
    assert result.returncode == 0 and sorted(p.name for p in (tmp_path / "g").iterdir()) == ["p0.png", "p1.png"]
    same = run(str(tmp_path / "p0.png"), "-o", str(tmp_path / "p0.png"), "--model", str(model_path))
    assert same.returncode == 1 and "overwrite" in same.stderr
    missing = run(str(tmp_path / "nope*.png"), "-o", str(tmp_path / "x"), "--model", str(model_path))
    assert missing.returncode == 2 and "nope" in missing.stderr
    # One file and an output name with a suffix vidrestore does not write: a folder, and it says so.
    folder = run(str(tmp_path / "p0.png"), "-o", str(tmp_path / "out.gif"), "--model", str(model_path))
    assert folder.returncode == 0 and (tmp_path / "out.gif" / "p0.png").is_file()
    assert "'.gif' is not an image or video suffix" in folder.stderr


def test_strength_zero_returns_the_image_and_bad_strength_is_refused(model_path, tmp_path):
    pixels = textured_image(5, 40, 56)
    write_image(tmp_path / "in.png", Image(pixels=pixels))
    full = run(str(tmp_path / "in.png"), "-o", str(tmp_path / "full.png"), "--model", str(model_path))
    none = run(str(tmp_path / "in.png"), "-o", str(tmp_path / "none.png"), "--model", str(model_path), "--strength", "0")
    assert full.returncode == 0 and none.returncode == 0, full.stderr + none.stderr
    assert not np.array_equal(read_image(tmp_path / "full.png").pixels, pixels)  # the model changes it
    assert np.array_equal(read_image(tmp_path / "none.png").pixels, pixels)
    bad = run(str(tmp_path / "in.png"), "-o", str(tmp_path / "bad.png"), "--model", str(model_path), "--strength", "2")
    assert bad.returncode != 0 and "strength must be a number in [0, 1]" in bad.stderr
    assert not (tmp_path / "bad.png").exists()
    floor = run(str(tmp_path / "in.png"), "-o", str(tmp_path / "bad.png"), "--model", str(model_path),
                "--correction-floor", "-1")
    assert floor.returncode != 0 and "correction_floor must be a number >= 0" in floor.stderr
    assert not (tmp_path / "bad.png").exists()


def test_inputs_with_one_output_path_are_not_overwritten_and_failures_name_the_file_once(model_path, tmp_path):
    first, second = textured_image(6, 32, 40), textured_image(7, 32, 40)
    write_image(tmp_path / "c1" / "x.png", Image(pixels=first))
    write_image(tmp_path / "c2" / "x.png", Image(pixels=second))
    (tmp_path / "c2" / "y.png").write_bytes(b"not a png")
    one = run(str(tmp_path / "c1" / "x.png"), "-o", str(tmp_path / "one"), "--model", str(model_path))
    result = run(str(tmp_path / "c1"), str(tmp_path / "c2"), "-o", str(tmp_path / "out"), "--model", str(model_path))
    assert result.returncode == 1 and "restored 1, skipped 0, failed 2" in result.stdout, result.stdout + result.stderr
    # The first input's result is kept, the second is reported, not written over it.
    assert np.array_equal(read_image(tmp_path / "out" / "x.png").pixels, read_image(tmp_path / "one" / "x.png").pixels)
    lines = [line for line in result.stderr.splitlines() if line.startswith("failed:")]
    assert any(str(tmp_path / "c2" / "x.png") in line and "separate folders" in line for line in lines), lines
    assert all(line.count("y.png") == 1 for line in lines if "y.png" in line), lines
    # The same file named twice (a file and a glob that matches it) is restored once, not refused.
    twice = run(str(tmp_path / "c1" / "x.png"), str(tmp_path / "c1" / "*.png"), "-o", str(tmp_path / "twice"),
                "--model", str(model_path))
    assert twice.returncode == 0 and "restored 1, skipped 0, failed 0" in twice.stdout, twice.stdout + twice.stderr


def test_a_video_whose_output_cannot_be_made_fails_alone_and_leaves_no_work_folder(model_path, tmp_path):
    from fractions import Fraction

    from vidrestore.io import VideoWriter

    with VideoWriter(tmp_path / "in" / "clip.mp4", width=48, height=32, fps=Fraction(25)) as writer:
        for index in range(3):
            writer.write(textured_image(index, 32, 48))
    write_image(tmp_path / "in" / "z.png", Image(pixels=textured_image(8, 32, 40)))
    (tmp_path / "blocker").write_bytes(b"a file where the output folder should be")
    refused = run(str(tmp_path / "in"), "-o", str(tmp_path / "blocker"), "--model", str(model_path))
    assert refused.returncode == 2 and "blocker is a file: with 2 inputs the output must be a folder" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    for name in ("clip.mp4", "z.png"):  # a folder where each output file should be: an OS error per file
        (tmp_path / "blocked" / name / "x").mkdir(parents=True)
    blocked = run(str(tmp_path / "in"), "-o", str(tmp_path / "blocked"), "--model", str(model_path))
    assert blocked.returncode == 1 and "Traceback" not in blocked.stderr, blocked.stderr
    assert "restored 0, skipped 0, failed 2" in blocked.stdout, blocked.stdout + blocked.stderr
    # ... found before the file is restored (a video's frames were all restored first), without a work folder.
    assert blocked.stderr.count("is a folder; remove it or name another output") == 2, blocked.stderr
    assert not list((tmp_path / "blocked").glob(".clip.mp4.parts"))
    # A codec the container cannot hold is found before any frame is restored: no output, no work folder.
    unfit = run(str(tmp_path / "in" / "clip.mp4"), "-o", str(tmp_path / "out" / "clip.ts"), "--model", str(model_path),
                "--codec", "ffv1")
    assert unfit.returncode == 1 and "restored 0, skipped 0, failed 1" in unfit.stdout, unfit.stdout + unfit.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    bogus = run(str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", str(model_path), "--codec", "bogus")
    assert bogus.returncode == 2 and "invalid choice: 'bogus'" in bogus.stderr, bogus.stderr  # before any file
    good = run(str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", str(model_path))
    assert good.returncode == 0 and "restored 2, skipped 0, failed 0" in good.stdout, good.stdout + good.stderr


def test_audio_only_files_under_a_video_suffix_are_left_alone_in_a_folder(model_path, tmp_path):
    """.3gp, .rm, .asf also hold voice memos, RealAudio and WMA: in a folder they are left alone with
    a warning, not failures; named on their own they are an error."""
    (tmp_path / "in").mkdir()
    write_audio_only(tmp_path / "in/memo.3gp")
    write_image(tmp_path / "in/photo.png", Image(textured_image(0, 40, 56)))
    folder = run(str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", str(model_path))
    assert folder.returncode == 0, folder.stderr
    assert "restored 1, skipped 1, failed 0" in folder.stdout and "memo.3gp: no video stream" in folder.stderr
    assert "cannot be written; restored as memo.mkv" not in folder.stderr  # it was said, then not done
    named = run(str(tmp_path / "in/memo.3gp"), "-o", str(tmp_path / "memo.mkv"), "--model", str(model_path))
    assert named.returncode == 1 and "has no video stream" in named.stderr


def test_a_float_tiff_with_nan_is_a_bad_file_not_a_bug(model_path, tmp_path):
    import cv2

    pixels = textured_image(9, 24, 32).astype(np.float32) / 255
    pixels[3, 4, 1] = np.nan
    cv2.imwrite(str(tmp_path / "nan.tiff"), pixels)
    result = run(str(tmp_path / "nan.tiff"), "-o", str(tmp_path / "out.tiff"), "--model", str(model_path))
    assert result.returncode == 1 and "have NaN or infinite pixels" in result.stderr, result.stderr
    assert "unexpected error" not in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out.tiff").exists()
    # An HDR float TIFF (values past 1) is restored, and told that the rest is clipped (was silent).
    cv2.imwrite(str(tmp_path / "hdr.tiff"), textured_image(9, 24, 32).astype(np.float32) / 64)
    hdr = run(str(tmp_path / "hdr.tiff"), "-o", str(tmp_path / "hdr_out.tiff"), "--model", str(model_path))
    assert hdr.returncode == 0 and "hdr.tiff: floating-point values from 0 to 3." in hdr.stderr, hdr.stderr
    assert "so the rest is clipped" in hdr.stderr


def test_folder_inputs_links_nested_output_and_nothing_to_do(model_path, tmp_path):
    """A link to a photo elsewhere is restored under its own name (it aborted the whole run); an
    output folder inside the input folder is not read back on the next run (it nested without
    end); the input folder as output, and a folder with nothing to restore, are one-line errors."""
    photos, elsewhere = tmp_path / "photos", tmp_path / "elsewhere"
    write_image(photos / "a.png", Image(pixels=textured_image(1, 24, 32)))
    write_image(elsewhere / "b.png", Image(pixels=textured_image(2, 24, 32)))
    (photos / "b.png").symlink_to(elsewhere / "b.png")
    for _ in range(2):
        result = run(str(photos), "-o", str(photos / "restored"), "--model", str(model_path), "--skip-existing")
        assert result.returncode == 0, result.stderr
    assert sorted(p.relative_to(photos).as_posix() for p in photos.rglob("*.png")) == [
        "a.png", "b.png", "restored/a.png", "restored/b.png"]
    assert "restored 0, skipped 2, failed 0" in result.stdout
    parent = run(str(photos / "restored"), "-o", str(tmp_path), "--model", str(model_path))  # output above the input
    assert parent.returncode == 0 and "restored 2, skipped 0, failed 0" in parent.stdout, parent.stderr
    same = run(str(photos), "-o", str(photos), "--model", str(model_path))
    assert same.returncode == 2 and "is an input folder: its files would be overwritten" in same.stderr
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("no pictures here")
    empty = run(str(tmp_path / "notes"), "-o", str(tmp_path / "out"), "--model", str(model_path))
    assert empty.returncode == 2 and "no images or videos found in" in empty.stderr


def test_a_lossless_webp_is_restored_into_a_lossless_webp(model_path, tmp_path):
    from PIL import Image as PillowImage

    PillowImage.fromarray(textured_image(3, 24, 32)).save(tmp_path / "in.webp", lossless=True)
    PillowImage.fromarray(textured_image(3, 24, 32)).save(tmp_path / "lossy.webp", quality=90)
    for name in ("in", "lossy"):
        assert run(str(tmp_path / f"{name}.webp"), "-o", str(tmp_path / f"{name}_out.webp"), "--model",
                   str(model_path)).returncode == 0
    assert b"VP8L" in (tmp_path / "in_out.webp").read_bytes()[:64]
    assert b"VP8L" not in (tmp_path / "lossy_out.webp").read_bytes()[:64]


def test_bad_video_options_are_refused_when_parsed(model_path, tmp_path):
    """They failed each video after decoding began, named as an internal parts file (or a traceback)."""
    write_image(tmp_path / "a.png", Image(pixels=textured_image(1, 24, 32)))
    for option, value, message in (("--temporal-strength", "5", "must be 0..1"), ("--temporal-radius", "-3", "must be >= 0"),
                                   ("--segment-frames", "0", "must be >= 1"), ("--crf", "99", "must be 0..51"),
                                   ("--preset", "turbo", "invalid choice")):
        result = run(str(tmp_path / "a.png"), "-o", str(tmp_path / "o.png"), "--model", str(model_path), option, value)
        assert result.returncode == 2 and message in result.stderr, (option, result.stderr)


def test_folder_videos_in_unwritable_containers_come_out_as_mkv(model_path, tmp_path):
    from fractions import Fraction

    from vidrestore.io import VideoWriter, probe
    with VideoWriter(tmp_path / "mkv_source.mkv", width=48, height=32, fps=Fraction(25), codec="ffv1") as writer:
        for index in range(3):
            writer.write(textured_image(index, 32, 48))
    import av

    (tmp_path / "in").mkdir()
    with av.open(str(tmp_path / "mkv_source.mkv")) as source, av.open(str(tmp_path / "in" / "c.avi"), "w") as out:
        stream = out.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 48, 32, "yuv420p"
        for frame in source.decode(video=0):
            out.mux(stream.encode(frame.reformat(format="yuv420p")))
        out.mux(stream.encode(None))
    write_image(tmp_path / "in" / "z.png", Image(pixels=textured_image(8, 32, 40)))
    result = run(str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", str(model_path))
    assert result.returncode == 0 and "restored 2, skipped 0, failed 0" in result.stdout, result.stderr
    assert probe(tmp_path / "out" / "c.mkv").frame_count == 3 and "restored as c.mkv" in result.stderr
    two = run(str(tmp_path / "in"), "-o", str(tmp_path / "two.png"), "--model", str(model_path))
    assert two.returncode == 2 and "2 inputs need an output folder" in two.stderr


def test_a_killed_writes_leftovers_are_removed_and_a_file_in_the_way_is_named(model_path, tmp_path):
    """A kill mid-write left ``.NAME.TOKEN.partial.png`` beside the output, which no rerun removed;
    an output under a file gave "File exists" / "[Errno 17]"."""
    src = tmp_path / "in"
    write_image(src / "a.png", Image(pixels=textured_image(1, 40, 56)))
    out = tmp_path / "out"
    out.mkdir()
    leftover = out / ".a.0123abcd.partial.png"
    leftover.write_bytes(b"half a picture")
    unrelated = out / ".b.partial.png"  # another output's: left alone
    unrelated.write_bytes(b"x")
    assert run(str(src), "-o", str(out), "--model", str(model_path)).returncode == 0
    assert not leftover.exists() and unrelated.exists() and (out / "a.png").is_file()
    (tmp_path / "afile").write_text("in the way")
    result = run(str(src / "a.png"), "-o", str(tmp_path / "afile" / "out.png"), "--model", str(model_path))
    assert result.returncode == 1 and "afile is a file, not a folder" in result.stderr, result.stderr
    degrade = subprocess.run([sys.executable, "-m", "vidrestore.cli", "degrade", str(src), str(tmp_path / "afile" / "x")],
                             capture_output=True, text=True, timeout=300)
    assert degrade.returncode == 2 and "afile is a file, not a folder" in degrade.stderr, degrade.stderr
    assert len(degrade.stderr.strip().splitlines()) == 1
