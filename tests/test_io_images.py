"""Tests for vidrestore.io.images and vidrestore.io.convert: real files written with Pillow/OpenCV."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image as PillowImage
from PIL import ImageCms, ImageOps

from vidrestore.errors import CorruptMediaError, MediaError, UnsupportedFormatError
from vidrestore.io import (
    Image,
    from_batch,
    from_float,
    gray_to_rgb,
    image_size,
    merge_alpha,
    read_image,
    rgb_to_gray,
    split_alpha,
    to_batch,
    to_float,
    write_image,
)

SRGB_ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
ORIENTATION = 0x0112


def random_pixels(channels: int, dtype: type, height: int = 12, width: int = 17, seed: int = 0) -> np.ndarray:
    return (
        np.random.default_rng(seed)
        .integers(0, np.iinfo(dtype).max, (height, width, channels), endpoint=True)
        .astype(dtype)
    )


def exif_with_orientation(orientation: int) -> bytes:
    exif = PillowImage.Exif()
    exif[ORIENTATION] = orientation
    exif[0x010F] = "TestCam"  # Make
    return exif.tobytes()


@pytest.mark.parametrize("suffix", [".png", ".tif"])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_sixteen_bit_round_trip_is_exact(suffix: str, channels: int, tmp_path: Path) -> None:
    pixels = random_pixels(channels, np.uint16)
    write_image(tmp_path / f"deep{suffix}", Image(pixels, icc_profile=SRGB_ICC))
    image = read_image(tmp_path / f"deep{suffix}")
    assert image.pixels.dtype == np.uint16 and image.bit_depth == 16
    np.testing.assert_array_equal(image.pixels, pixels)
    if suffix == ".png":  # 16-bit colour PNG gets its ICC chunk added after OpenCV encodes it
        assert image.icc_profile == SRGB_ICC


def test_sixteen_bit_colour_png_written_by_opencv_reads_as_rgb(tmp_path: Path) -> None:
    pixels = random_pixels(3, np.uint16)
    cv2.imwrite(str(tmp_path / "external.png"), cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR))
    np.testing.assert_array_equal(read_image(tmp_path / "external.png").pixels, pixels)


@pytest.mark.parametrize("channels", [3, 4])
def test_float_colour_tiff_written_by_opencv_reads_as_rgb(channels: int, tmp_path: Path) -> None:
    pixels = np.random.default_rng(0).uniform(-0.5, 1.5, (12, 17, channels)).astype(np.float32)
    conversion = cv2.COLOR_RGB2BGR if channels == 3 else cv2.COLOR_RGBA2BGRA
    cv2.imwrite(str(tmp_path / "float.tiff"), cv2.cvtColor(pixels, conversion))
    image = read_image(tmp_path / "float.tiff")
    assert image.source_format == "TIFF" and image.bit_depth == 32
    np.testing.assert_array_equal(image.pixels, pixels)  # channel order RGB, values as stored (not clipped)
    assert image_size(tmp_path / "float.tiff", verify=True) == (17, 12)


def plain_tiff(path: Path, pixels: np.ndarray, sample_format: int) -> None:
    """An uncompressed one-strip little-endian TIFF of ``pixels`` (H, W, C) as any libtiff writer
    stores them; ``sample_format`` 1 unsigned, 2 signed, 3 floating point."""
    import struct

    height, width, channels = pixels.shape
    data = pixels.astype(pixels.dtype.newbyteorder("<")).tobytes()
    directory_at = 8 + len(data) + len(data) % 2
    extra_at, extra = directory_at + 2 + 9 * 12 + 4, b""

    def per_sample(value: int) -> tuple[int, int, int, bytes]:  # SHORT × channels, inline when it fits
        nonlocal extra
        values = struct.pack("<" + "H" * channels, *[value] * channels)
        if len(values) <= 4:
            return 3, channels, 0, values.ljust(4, b"\0")
        extra += values
        return 3, channels, 0, struct.pack("<I", extra_at + len(extra) - len(values))

    entries = [(256, 4, 1, 0, struct.pack("<I", width)), (257, 4, 1, 0, struct.pack("<I", height)),
               (258, *per_sample(pixels.dtype.itemsize * 8)), (259, 3, 1, 0, struct.pack("<HH", 1, 0)),
               (262, 3, 1, 0, struct.pack("<HH", 2 if channels >= 3 else 1, 0)), (273, 4, 1, 0, struct.pack("<I", 8)),
               (277, 3, 1, 0, struct.pack("<HH", channels, 0)), (279, 4, 1, 0, struct.pack("<I", len(data))),
               (339, *per_sample(sample_format))]
    directory = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHI", t, k, n) + v for t, k, n, _, v in entries)
    path.write_bytes(b"II*\0" + struct.pack("<I", directory_at) + data.ljust(directory_at - 8, b"\0") + directory
                     + b"\0\0\0\0" + extra)


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_double_precision_tiff_reads_as_float(channels: int, tmp_path: Path) -> None:
    """Scientific and HDR tools write 64-bit float TIFFs; Pillow cannot open them and the file
    was called damaged."""
    pixels = np.random.default_rng(0).uniform(0, 1, (12, 17, channels))
    plain_tiff(tmp_path / "double.tif", pixels, 3)
    image = read_image(tmp_path / "double.tif")
    assert image.pixels.dtype == np.float32 and image.pixels.shape == (12, 17, channels)
    np.testing.assert_array_equal(image.pixels, pixels.astype(np.float32))
    assert image_size(tmp_path / "double.tif") == (17, 12)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("dtype,sample_format,words", [(np.int8, 2, "8-bit signed integer"),
                                                       (np.int16, 2, "16-bit signed integer"),
                                                       (np.uint32, 1, "32-bit unsigned integer"),
                                                       (np.float16, 3, "16-bit floating-point")])
def test_tiff_samples_we_do_not_read_are_named_not_called_damaged(tmp_path: Path, dtype, sample_format, words, channels,
                                                                   capfd) -> None:
    """Signed samples read as unsigned ones (8-bit gray: -100 came back as 156, without a word), the
    others were called damaged."""
    values = np.resize(np.array([-100, -1, 0, 1, 100]).astype(dtype), (12, 17, channels))
    plain_tiff(tmp_path / "odd.tif", values, sample_format)
    if channels == 1 and dtype == np.uint32:  # gray uint32 is read when its values fit 16 bits
        values = np.resize(np.array([0, 1, 100, 60000], np.uint32), (12, 17, 1))
        plain_tiff(tmp_path / "odd.tif", values, sample_format)
        assert np.array_equal(read_image(tmp_path / "odd.tif").pixels, values.astype(np.uint16))
        return
    with pytest.raises(UnsupportedFormatError, match=f"TIFF with {words} samples is not supported"):
        read_image(tmp_path / "odd.tif")
    assert "imread" not in capfd.readouterr().err  # said before OpenCV tries (and complains on stderr)
    plain_tiff(tmp_path / "cut.tif", np.ones((12, 17, 3), np.uint8), 1)
    (tmp_path / "cut.tif").write_bytes((tmp_path / "cut.tif").read_bytes()[:-40])  # its directory cut short
    with pytest.raises(CorruptMediaError):
        read_image(tmp_path / "cut.tif")


@pytest.mark.parametrize("suffix", [".png", ".webp", ".gif"])
def test_animated_images_are_refused_not_cut_to_one_frame(suffix: str, tmp_path: Path) -> None:
    frames = [PillowImage.fromarray(random_pixels(3, np.uint8, seed=seed)) for seed in range(3)]
    frames[0].save(tmp_path / f"anim{suffix}", save_all=True, append_images=frames[1:], duration=100, loop=0)
    with pytest.raises(UnsupportedFormatError, match=r"animated image \(3 frames\).*video"):
        read_image(tmp_path / f"anim{suffix}")
    frames[0].save(tmp_path / f"still{suffix}", save_all=True)  # one frame: a still, whatever the writer
    if suffix == ".gif":
        with pytest.raises(UnsupportedFormatError, match="GIF images are not supported"):
            read_image(tmp_path / f"still{suffix}")
    else:
        assert read_image(tmp_path / f"still{suffix}").pixels.shape == (12, 17, 3)


@pytest.mark.parametrize("suffix", [".png", ".webp", ".tif"])
def test_rgba_round_trip_is_exact(suffix: str, tmp_path: Path) -> None:
    pixels = random_pixels(4, np.uint8)
    pixels[0, 0, 3] = 0  # colour under a fully transparent pixel must survive too
    write_image(tmp_path / f"alpha{suffix}", Image(pixels), lossless=True)
    image = read_image(tmp_path / f"alpha{suffix}")
    assert image.has_alpha and not image.is_gray
    np.testing.assert_array_equal(image.pixels, pixels)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp", ".tif"])
def test_icc_and_exif_are_kept(suffix: str, tmp_path: Path) -> None:
    write_image(
        tmp_path / f"tagged{suffix}",
        Image(random_pixels(3, np.uint8), icc_profile=SRGB_ICC, exif=exif_with_orientation(1)),
    )
    image = read_image(tmp_path / f"tagged{suffix}")
    assert image.icc_profile == SRGB_ICC
    exif = PillowImage.Exif()
    exif.load(image.exif)
    assert exif[0x010F] == "TestCam"
    assert image.source_format == {".jpg": "JPEG", ".tif": "TIFF"}.get(suffix, suffix[1:].upper())


def test_exif_orientation_six_is_applied_and_reset(tmp_path: Path) -> None:
    stored = np.zeros((32, 48, 3), np.uint8)  # landscape as stored
    stored[:8, :8] = (255, 0, 0)  # red marker at the stored top-left
    PillowImage.fromarray(stored).save(tmp_path / "phone.jpg", quality=95, exif=exif_with_orientation(6))
    image = read_image(tmp_path / "phone.jpg")
    assert image.pixels.shape == (48, 32, 3)  # portrait once upright
    assert image.pixels[3, -4, 0] > 200 and image.pixels[3, 3, 0] < 50  # orientation 6: top-left goes top-right
    write_image(tmp_path / "upright.jpg", image)
    assert PillowImage.open(tmp_path / "upright.jpg").getexif()[ORIENTATION] == 1
    assert read_image(tmp_path / "upright.jpg").pixels.shape == (48, 32, 3)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_matches_pillow(orientation: int, tmp_path: Path) -> None:
    pixels = random_pixels(3, np.uint8, height=5, width=7)
    PillowImage.fromarray(pixels).save(tmp_path / "o.png", exif=exif_with_orientation(orientation))
    expected = np.asarray(ImageOps.exif_transpose(PillowImage.open(tmp_path / "o.png")))
    np.testing.assert_array_equal(read_image(tmp_path / "o.png").pixels, expected)


def test_palette_with_transparency_becomes_rgba(tmp_path: Path) -> None:
    palette_image = PillowImage.new("P", (6, 4), 0)
    palette_image.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    palette_image.putpixel((1, 1), 1)
    palette_image.save(tmp_path / "palette.png", transparency=0)
    pixels = read_image(tmp_path / "palette.png").pixels
    assert pixels.shape == (4, 6, 4) and pixels.dtype == np.uint8
    np.testing.assert_array_equal(pixels[1, 1], (200, 100, 50, 255))
    assert pixels[0, 0, 3] == 0


def test_cmyk_jpeg_becomes_rgb(tmp_path: Path) -> None:
    cmyk = np.zeros((16, 16, 4), np.uint8)
    cmyk[:, :8, 0] = 255  # cyan on the left, white (no ink) on the right
    PillowImage.fromarray(cmyk, mode="CMYK").save(tmp_path / "print.jpg", quality=95)
    image = read_image(tmp_path / "print.jpg")
    assert image.pixels.shape == (16, 16, 3) and image.icc_profile is None
    np.testing.assert_allclose(image.pixels[8, 2], (0, 255, 255), atol=12)
    np.testing.assert_allclose(image.pixels[8, 13], (255, 255, 255), atol=12)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".tif", ".bmp"])
def test_grayscale_stays_one_channel(suffix: str, tmp_path: Path) -> None:
    PillowImage.fromarray(random_pixels(1, np.uint8)[..., 0]).save(tmp_path / f"gray{suffix}")
    image = read_image(tmp_path / f"gray{suffix}")
    assert image.is_gray and not image.has_alpha and image.pixels.shape == (12, 17, 1)


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tif"])
def test_indexed_gray_stays_gray_and_indexed_colour_stays_colour(suffix: str, tmp_path: Path) -> None:
    """An indexed picture whose colours are grays was widened to RGB (and written back as RGB)."""
    gray = random_pixels(1, np.uint8)[..., 0]
    indexed = PillowImage.fromarray(gray).convert("P")  # Pillow gives L → P a gray palette
    indexed.save(tmp_path / f"scan{suffix}")
    image = read_image(tmp_path / f"scan{suffix}")
    assert image.is_gray and not image.has_alpha
    np.testing.assert_array_equal(image.pixels[..., 0], gray)
    colour = PillowImage.fromarray(random_pixels(3, np.uint8)).quantize(16)
    colour.save(tmp_path / f"colour{suffix}")
    image = read_image(tmp_path / f"colour{suffix}")
    assert image.pixels.shape == (12, 17, 3)
    np.testing.assert_array_equal(image.pixels, np.asarray(colour.convert("RGB")))


def test_indexed_gray_with_transparency_becomes_gray_and_alpha(tmp_path: Path) -> None:
    indexed = PillowImage.fromarray(np.tile(np.arange(0, 256, 16, dtype=np.uint8), (4, 1))).convert("P")
    indexed.info["transparency"] = int(np.asarray(indexed)[0, 0])
    indexed.save(tmp_path / "mask.png", transparency=indexed.info["transparency"])
    pixels = read_image(tmp_path / "mask.png").pixels
    assert pixels.shape == (4, 16, 2)
    np.testing.assert_array_equal(pixels[..., 0], np.tile(np.arange(0, 256, 16), (4, 1)))
    assert pixels[0, 0, 1] == 0 and (pixels[:, 1:, 1] == 255).all()


def test_indexed_gray_keeps_rgb_when_a_colour_key_or_profile_says_so(tmp_path: Path) -> None:
    """A hidden (alpha 0) palette colour does not count; an RGB ICC profile keeps the picture RGB
    (a gray PNG cannot carry one: libpng drops it and warns)."""
    values = np.tile(np.arange(0, 240, 16, dtype=np.uint8), (4, 1))
    indexed = PillowImage.fromarray(values).convert("P")
    palette = indexed.getpalette()
    key = int(values.max()) + 1
    palette[3 * key : 3 * key + 3] = [255, 0, 255]  # a magenta colour key, at alpha 0
    indexed.putpalette(palette)
    keyed = np.asarray(indexed).copy()
    keyed[0, 0] = key
    picture = PillowImage.frombytes("P", (keyed.shape[1], keyed.shape[0]), keyed.tobytes())
    picture.putpalette(palette)
    picture.save(tmp_path / "keyed.png", transparency=key)
    pixels = read_image(tmp_path / "keyed.png").pixels
    assert pixels.shape == (4, 15, 2) and pixels[0, 0, 1] == 0 and (pixels[1:, :, 0] == values[1:]).all()
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    PillowImage.fromarray(values).convert("P").save(tmp_path / "profiled.png", icc_profile=srgb)
    image = read_image(tmp_path / "profiled.png")
    assert image.pixels.shape == (4, 15, 3) and image.icc_profile == srgb


def test_one_bit_becomes_gray_uint8(tmp_path: Path) -> None:
    PillowImage.fromarray(np.eye(8, dtype=bool)).save(tmp_path / "mask.png")
    pixels = read_image(tmp_path / "mask.png").pixels
    assert pixels.dtype == np.uint8 and pixels.shape == (8, 8, 1)
    np.testing.assert_array_equal(pixels[..., 0], np.eye(8, dtype=np.uint8) * 255)


def _truncated(suffix: str) -> bytes:
    buffer = io.BytesIO()
    PillowImage.fromarray(random_pixels(3, np.uint8, height=64, width=64)).save(
        buffer, format="PNG" if suffix == ".png" else "JPEG"
    )
    return buffer.getvalue()[: len(buffer.getvalue()) // 2]


@pytest.mark.parametrize(
    ("name", "content", "error"),
    [
        ("empty.png", b"", CorruptMediaError),
        ("cut.png", _truncated(".png"), CorruptMediaError),
        ("cut.jpg", _truncated(".jpg"), CorruptMediaError),
        ("noise.png", np.random.default_rng(0).bytes(500), CorruptMediaError),
        ("notes.txt", b"just some text\n", UnsupportedFormatError),
    ],
)
def test_bad_files_raise_clear_errors(name: str, content: bytes, error: type, tmp_path: Path) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(error) as raised:
        read_image(tmp_path / name)
    assert str(tmp_path / name) in str(raised.value)
    assert "Traceback" not in str(raised.value)


def test_image_size_reads_the_header_and_verify_catches_truncation(tmp_path: Path) -> None:
    write_image(tmp_path / "wide.jpg", Image(pixels=np.zeros((30, 70, 3), np.uint8)))
    assert image_size(tmp_path / "wide.jpg") == (70, 30)
    (tmp_path / "cut.jpg").write_bytes(_truncated(".jpg"))
    image_size(tmp_path / "cut.jpg")  # the header alone is whole
    with pytest.raises(CorruptMediaError, match="cut.jpg"):
        image_size(tmp_path / "cut.jpg", verify=True)
    (tmp_path / "notes.txt").write_text("text")
    with pytest.raises(UnsupportedFormatError):
        image_size(tmp_path / "notes.txt")


def test_missing_file_is_a_media_error(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match=r"missing\.png: file not found") as raised:
        read_image(tmp_path / "missing.png")
    assert type(raised.value) is MediaError


def test_write_refuses_what_the_format_cannot_hold(tmp_path: Path) -> None:
    rgba = Image(random_pixels(4, np.uint8))
    with pytest.raises(UnsupportedFormatError, match="alpha"):
        write_image(tmp_path / "a.jpg", rgba)
    with pytest.raises(UnsupportedFormatError, match=r"\.gif"):
        write_image(tmp_path / "a.gif", rgba)
    assert list(tmp_path.iterdir()) == []


def test_sixteen_bit_to_eight_bit_format_rounds(tmp_path: Path) -> None:
    pixels = np.full((4, 4, 3), 257 * 100 + 128, np.uint16)  # 100.498… in 8-bit units
    write_image(tmp_path / "eight.bmp", Image(pixels))
    np.testing.assert_array_equal(read_image(tmp_path / "eight.bmp").pixels, 100)


def test_write_is_atomic_and_creates_folders(tmp_path: Path) -> None:
    target = tmp_path / "new" / "folder" / "out.png"
    write_image(target, Image(random_pixels(3, np.uint8)))
    write_image(target, Image(random_pixels(3, np.uint8, seed=1)))  # overwrite in place
    assert [path.name for path in target.parent.iterdir()] == ["out.png"]
    np.testing.assert_array_equal(read_image(target).pixels, random_pixels(3, np.uint8, seed=1))


# --- convert -------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_float_round_trip_is_exact(dtype: type) -> None:
    pixels = random_pixels(3, dtype)
    as_float = to_float(pixels)
    assert as_float.dtype == np.float32 and as_float.min() >= 0.0 and as_float.max() <= 1.0
    np.testing.assert_array_equal(from_float(as_float, dtype), pixels)


def test_from_float_clips_and_rounds() -> None:
    values = np.array([-0.5, 0.0, 0.6 / 255, 1.49 / 255, 1.0, 2.0, np.nan], np.float32)
    np.testing.assert_array_equal(from_float(values, np.uint8), [0, 0, 1, 1, 255, 255, 0])


def test_alpha_and_gray_helpers_invert() -> None:
    rgba = random_pixels(4, np.uint8)
    color, alpha = split_alpha(rgba)
    assert color.shape[2] == 3 and alpha is not None and alpha.shape[2] == 1
    np.testing.assert_array_equal(merge_alpha(color, alpha), rgba)
    assert split_alpha(color)[1] is None
    gray = random_pixels(1, np.uint16)
    np.testing.assert_array_equal(rgb_to_gray(gray_to_rgb(gray)), gray)
    np.testing.assert_allclose(rgb_to_gray(np.array([[[255, 0, 0]]], np.uint8)), [[[76]]])


def test_batch_round_trip() -> None:
    images = [to_float(random_pixels(3, np.uint8, seed=seed)) for seed in range(3)]
    batch = to_batch(images)
    assert batch.shape == (3, 3, 12, 17) and batch.dtype == torch.float32
    np.testing.assert_array_equal(batch[1, 2].numpy(), images[1][..., 2])
    np.testing.assert_array_equal(from_batch(batch), np.stack(images))
    with pytest.raises(ValueError, match="to_float"):
        to_batch([random_pixels(3, np.uint8)])


# ------------------------------------------------------------------------------ metadata beyond ICC/EXIF


def camera_exif() -> bytes:
    """EXIF as a camera writes it: main fields plus Exif and GPS sub-directories."""
    exif = PillowImage.Exif()
    exif[0x010F] = "Canon"  # Make
    exif[0x0110] = "EOS 5D"  # Model
    exif.get_ifd(0x8769)[0x9003] = "2024:05:01 10:00:00"  # DateTimeOriginal
    exif.get_ifd(0x8825)[0x0001] = "N"  # GPSLatitudeRef
    return exif.tobytes()


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_camera_exif_goes_into_8_bit_tiff_whole(tmp_path, channels, capfd, caplog):
    """Pillow's TIFF writer fails on the Exif/GPS sub-directories (first an unexpected error for
    every camera photo, then the main fields alone, with a raw libtiff line on stderr): the
    directory is rewritten with them, as for 16-bit colour."""
    pixels = random_pixels(channels, np.uint8)
    write_image(tmp_path / "o.tif", Image(pixels, exif=camera_exif(), xmp=b"<x/>", dpi=(300.0, 300.0)))
    back = read_image(tmp_path / "o.tif")
    assert np.array_equal(back.pixels, pixels) and back.xmp == b"<x/>" and back.dpi == (300.0, 300.0)
    kept = PillowImage.Exif()
    kept.load(back.exif)
    assert kept.get(0x010F) == "Canon" and kept.get_ifd(0x8769)[0x9003] == "2024:05:01 10:00:00"
    assert kept.get_ifd(0x8825)[0x0001] == "N"
    assert "EXIF" not in caplog.text and capfd.readouterr().err == ""
    if channels in (1, 3):  # other readers decode it too (OpenCV premultiplies alpha)
        decoded = cv2.imread(str(tmp_path / "o.tif"), cv2.IMREAD_UNCHANGED).reshape(pixels.shape)
        assert np.array_equal(decoded[..., ::-1], pixels)
    write_image(tmp_path / "o.jpg", Image(random_pixels(3, np.uint8), exif=camera_exif()))
    with PillowImage.open(tmp_path / "o.jpg") as picture:  # JPEG keeps them all
        assert picture.getexif().get_ifd(0x8769)[0x9003] == "2024:05:01 10:00:00"


def test_exif_too_long_for_jpeg_is_dropped_not_fatal(tmp_path, caplog):
    exif = PillowImage.Exif()
    exif.get_ifd(0x8769)[0x9286] = b"\0" * 70_000  # a user comment larger than JPEG's 64 KiB segment
    write_image(tmp_path / "o.jpg", Image(random_pixels(3, np.uint8), exif=exif.tobytes(), icc_profile=SRGB_ICC))
    assert read_image(tmp_path / "o.jpg").icc_profile == SRGB_ICC
    assert "EXIF not written (ValueError: EXIF data is too long)" in caplog.text


def test_sixteen_bit_gray_with_a_transparent_key_gets_alpha(tmp_path):
    gray = (np.arange(12 * 17).reshape(12, 17) * 300).astype(np.uint16)
    picture = PillowImage.fromarray(gray.astype(np.int32)).convert("I;16")
    picture.save(tmp_path / "k.png", transparency=600)
    pixels = read_image(tmp_path / "k.png").pixels
    assert pixels.shape == (12, 17, 2) and pixels.dtype == np.uint16
    assert pixels[0, 2, 1] == 0 and pixels[0, 3, 1] == 65535 and pixels[0, 3, 0] == 900


def test_dpi_xmp_and_png_text_are_kept(tmp_path):
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/></x:xmpmeta>'
    PillowImage.fromarray(random_pixels(3, np.uint8)).save(tmp_path / "a.jpg", dpi=(300, 300), xmp=xmp)
    image = read_image(tmp_path / "a.jpg")
    write_image(tmp_path / "b.jpg", image)
    with PillowImage.open(tmp_path / "b.jpg") as picture:
        assert picture.info["dpi"] == (300, 300) and picture.info["xmp"] == xmp
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_itxt("Title", "Zoë's garden")
    PillowImage.fromarray(random_pixels(3, np.uint8)).save(tmp_path / "a.png", pnginfo=info, dpi=(150, 150))
    write_image(tmp_path / "b.png", read_image(tmp_path / "a.png"))
    with PillowImage.open(tmp_path / "b.png") as picture:
        assert picture.text["Title"] == "Zoë's garden" and round(picture.info["dpi"][0]) == 150


def test_a_lossless_source_is_marked_so(tmp_path):
    PillowImage.fromarray(random_pixels(3, np.uint8)).save(tmp_path / "l.webp", lossless=True)
    PillowImage.fromarray(random_pixels(3, np.uint8)).save(tmp_path / "q.webp", quality=80)
    PillowImage.fromarray(random_pixels(3, np.uint8)).save(tmp_path / "j.jpg")
    assert read_image(tmp_path / "l.webp").lossless and not read_image(tmp_path / "q.webp").lossless
    assert not read_image(tmp_path / "j.jpg").lossless and read_image(tmp_path / "l.webp").source_format == "WEBP"


def test_a_multipage_tiff_says_only_its_first_page_is_read(tmp_path, caplog):
    pages = [PillowImage.fromarray(random_pixels(3, np.uint8, seed=s)) for s in range(3)]
    pages[0].save(tmp_path / "m.tif", save_all=True, append_images=pages[1:])
    assert np.array_equal(read_image(tmp_path / "m.tif").pixels, np.asarray(pages[0]))
    assert "3 pages; only the first is restored" in caplog.text


def test_jfif_and_jpe_are_jpeg(tmp_path):
    for suffix in (".jfif", ".jpe"):
        PillowImage.fromarray(random_pixels(3, np.uint8)).save(tmp_path / f"a{suffix}", format="JPEG")
        image = read_image(tmp_path / f"a{suffix}")
        write_image(tmp_path / f"b{suffix}", image)
        assert read_image(tmp_path / f"b{suffix}").source_format == "JPEG"


def test_sixteen_bit_rgba_tiff_declares_its_alpha(tmp_path):
    """OpenCV writes no ExtraSamples tag: other programs took the 4th sample for unspecified data."""
    pixels = random_pixels(4, np.uint16)
    write_image(tmp_path / "a.tif", Image(pixels))
    with PillowImage.open(tmp_path / "a.tif") as picture:
        assert picture.tag_v2.get(338) in (2, (2,))
    assert np.array_equal(read_image(tmp_path / "a.tif").pixels, pixels)
    decoded = cv2.imread(str(tmp_path / "a.tif"), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(cv2.cvtColor(decoded, cv2.COLOR_BGRA2RGBA), pixels)


@pytest.mark.parametrize("channels", [3, 4])
def test_sixteen_bit_colour_tiff_keeps_icc_exif_xmp_and_dpi(tmp_path, channels):
    """16-bit colour TIFF is how scans in wide-gamut profiles (Adobe RGB, ProPhoto) and raw
    developers' exports travel: written without the profile, the restored picture's colours shift in
    every colour-managed viewer; without the EXIF, it loses its camera, lens and date."""
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()  # any valid profile
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"/>'
    exif = PillowImage.Exif()
    exif[271], exif[272], exif[274] = "Maker", "Camera 1", 1
    exif.get_ifd(0x8769)[36867] = "2019:05:05 10:00:00"  # DateTimeOriginal, in the Exif sub-directory
    exif.get_ifd(0x8769)[33434] = 1 / 250  # ExposureTime
    pixels = random_pixels(channels, np.uint16)
    image = Image(pixels, icc_profile=icc, xmp=xmp, dpi=(300.0, 600.0), exif=exif.tobytes())
    write_image(tmp_path / "o.tif", image)
    back = read_image(tmp_path / "o.tif")
    assert np.array_equal(back.pixels, pixels) and back.pixels.dtype == np.uint16
    assert back.icc_profile == icc and back.xmp == xmp and back.dpi == (300.0, 600.0)
    kept = PillowImage.Exif()
    kept.load(back.exif)
    assert kept[271] == "Maker" and kept[272] == "Camera 1"
    assert kept.get_ifd(0x8769)[36867] == "2019:05:05 10:00:00" and kept.get_ifd(0x8769)[33434] == 1 / 250
    decoded = cv2.imread(str(tmp_path / "o.tif"), cv2.IMREAD_UNCHANGED)  # other readers still decode it
    assert np.array_equal(decoded[..., [2, 1, 0, 3][:channels]], pixels)
    with PillowImage.open(tmp_path / "o.tif") as picture:
        assert (picture.tag_v2.get(338) in (2, (2,))) == (channels == 4)


@pytest.mark.parametrize("suffix,channels,dtype", [(".png", 2, np.uint16), (".tif", 2, np.uint16), (".webp", 1, np.uint8),
                                                  (".webp", 2, np.uint8)])
def test_a_gray_profile_is_not_put_on_pixels_stored_as_rgb(tmp_path, suffix, channels, dtype, caplog):
    """16-bit gray + alpha is written as RGBA and WebP stores gray as RGB: a gray ICC profile on
    RGB pixels is invalid (libpng drops the chunk with a warning, colour-managed viewers refuse it)."""
    gray_icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    gray_icc = gray_icc[:16] + b"GRAY" + gray_icc[20:]  # only the colour space field is read
    image = Image(random_pixels(channels, dtype), icc_profile=gray_icc)
    with caplog.at_level("INFO", logger="vidrestore"):
        write_image(tmp_path / f"o{suffix}", image)
    assert read_image(tmp_path / f"o{suffix}").icc_profile is None
    assert "gray ICC profile cannot describe" in caplog.text
    write_image(tmp_path / "kept.png", Image(random_pixels(channels, np.uint8), icc_profile=gray_icc))
    assert read_image(tmp_path / "kept.png").icc_profile == gray_icc  # stored as gray: kept


@pytest.mark.parametrize("order", ["<", ">"])
def test_sixteen_bit_tiff_carries_a_cameras_interop_directory_and_no_source_offsets(tmp_path, order):
    """A camera's EXIF points from its Exif directory to an Interop directory by offset: copied as a
    number, the pointer landed on the new file's pixel data ("Corrupt EXIF data"). (Reading the
    written file back also lost its EXIF: Pillow had closed the file before the Exif directory was
    read, "seek of closed file".)"""
    import struct

    def directory(entries):
        return (struct.pack(order + "H", len(entries)) + b"".join(struct.pack(order + "HHI", *e[:3]) + e[3] for e in entries)
                + struct.pack(order + "I", 0))

    exif_at, interop_at = 8 + 30, 8 + 30 + 30
    raw = (b"Exif\0\0" + (b"II*\0" if order == "<" else b"MM\0*") + struct.pack(order + "I", 8)
           + directory([(0x010F, 2, 4, b"abc\0"), (0x8769, 4, 1, struct.pack(order + "I", exif_at))])
           + directory([(0x9000, 7, 4, b"0231"), (0xA005, 4, 1, struct.pack(order + "I", interop_at))])
           + directory([(0x0001, 2, 4, b"R98\0")]))
    write_image(tmp_path / "o.tif", Image(random_pixels(3, np.uint16), exif=raw))
    kept = PillowImage.Exif()
    kept.load(read_image(tmp_path / "o.tif").exif)
    assert kept[0x010F] == "abc" and kept.get_ifd(0x8769)[0x9000] == b"0231"
    assert dict(kept.get_ifd(0xA005)) == {1: "R98"}
    # A TIFF source's own offsets (sub-images, a thumbnail) and Photoshop's layers are not carried.
    source = PillowImage.fromarray(random_pixels(3, np.uint8))
    info = PillowImage.Exif()
    info[0x010F], info[513], info[514], info[37724] = "abc", 8, 100, b"layers"
    source.save(tmp_path / "ps.tif", exif=info.tobytes())
    carried = PillowImage.Exif()
    carried.load(read_image(tmp_path / "ps.tif").exif)
    assert carried[0x010F] == "abc" and not {513, 514, 37724} & set(carried)



def test_sixteen_bit_tiff_whose_exif_cannot_be_written_is_kept_without_it(tmp_path, monkeypatch, caplog):
    from PIL.TiffImagePlugin import ImageFileDirectory_v2

    serialise = ImageFileDirectory_v2.tobytes

    def refuse_exif(self, offset=0):
        if 271 in self:
            raise ValueError("cannot write this vendor tag")
        return serialise(self, offset)

    exif = PillowImage.Exif()
    exif[271] = "Maker"
    pixels = random_pixels(3, np.uint16)
    image = Image(pixels, exif=exif.tobytes(), dpi=(300.0, 300.0))
    monkeypatch.setattr(ImageFileDirectory_v2, "tobytes", refuse_exif)
    write_image(tmp_path / "o.tif", image)
    monkeypatch.undo()
    back = read_image(tmp_path / "o.tif")
    assert np.array_equal(back.pixels, pixels) and back.dpi == (300.0, 300.0)
    kept = PillowImage.Exif()
    kept.load(back.exif or b"")
    assert 271 not in kept  # (a TIFF's resolution tags read back as EXIF too)
    assert "EXIF could not be written (cannot write this vendor tag); it is dropped" in caplog.text


@pytest.mark.parametrize("orientation", [2, 3, 5, 6, 7, 8])
def test_a_turned_tiff_reads_upright_like_the_same_png(tmp_path, orientation):
    """Pillow 13 turns a TIFF as it loads, and scrambled gray and RGBA ones turned by 90 degrees
    (exit 0, a shredded picture); an RGB one crashed ("tile cannot extend outside image"); OpenCV
    could not decode a 16-bit one at all. The same pixels and orientation as PNG are the reference
    (PNG's orientation is checked against Pillow's exif_transpose above)."""
    exif = PillowImage.Exif()
    exif[274] = orientation
    for name, pixels in (("rgb", random_pixels(3, np.uint8, 9, 14)), ("gray", random_pixels(1, np.uint8, 9, 14)[..., 0]),
                         ("rgba", random_pixels(4, np.uint8, 9, 14))):
        PillowImage.fromarray(pixels).save(tmp_path / f"{name}.tif", exif=exif)
        PillowImage.fromarray(pixels).save(tmp_path / f"{name}.png", exif=exif)
        tiff, png = read_image(tmp_path / f"{name}.tif").pixels, read_image(tmp_path / f"{name}.png").pixels
        assert tiff.shape == png.shape and np.array_equal(tiff, png), name
    stored = random_pixels(3, np.uint16, 9, 14)
    write_image(tmp_path / "turned.tif", Image(stored, exif=exif_with_orientation(orientation)))  # 16-bit: OpenCV
    from vidrestore.io.images import _apply_orientation

    assert np.array_equal(read_image(tmp_path / "turned.tif").pixels, _apply_orientation(stored, orientation))


def test_turning_upright_swaps_the_exif_pixel_dimensions(tmp_path):
    """A 14x9 photo stored on its side says 14x9 in its Exif directory; written upright it is 9x14."""
    exif = PillowImage.Exif()
    exif[274] = 6
    exif.get_ifd(0x8769)[0xA002], exif.get_ifd(0x8769)[0xA003] = 14, 9
    PillowImage.fromarray(random_pixels(3, np.uint8, 9, 14)).save(tmp_path / "side.jpg", exif=exif.tobytes())
    image = read_image(tmp_path / "side.jpg")
    kept = PillowImage.Exif()
    kept.load(image.exif)
    assert image.pixels.shape[:2] == (14, 9) and kept.get(274) == 1
    assert (kept.get_ifd(0x8769)[0xA002], kept.get_ifd(0x8769)[0xA003]) == (9, 14)


def test_a_tiff_without_resolution_gets_no_dpi(tmp_path):
    """Pillow reports (1, 1) dpi for a TIFF without resolution tags: carried over, a 4000-px
    picture would print 4000 inches wide."""
    cv2.imwrite(str(tmp_path / "cv.tif"), random_pixels(3, np.uint8))
    assert read_image(tmp_path / "cv.tif").dpi is None
    PillowImage.fromarray(random_pixels(3, np.uint8)).save(tmp_path / "d.tif", dpi=(300, 300))
    assert read_image(tmp_path / "d.tif").dpi == (300.0, 300.0)


def test_sixteen_bit_png_keeps_dpi_text_and_xmp(tmp_path):
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"/>'
    image = Image(random_pixels(3, np.uint16), dpi=(300.0, 300.0), xmp=xmp, text={"Title": "scan 1"})
    write_image(tmp_path / "o.png", image)
    back = read_image(tmp_path / "o.png")
    assert back.pixels.dtype == np.uint16 and back.text == {"Title": "scan 1"} and back.xmp == xmp
    assert back.dpi is not None and round(back.dpi[0]) == 300


def _png_chunk_payloads(path: Path) -> dict[bytes, bytes]:
    """Chunk type → payload of the chunks before the first IDAT of a PNG file."""
    import struct

    data, position, chunks = path.read_bytes(), 8, {}
    while position < len(data):
        (length,), kind = struct.unpack(">I", data[position:position + 4]), data[position + 4:position + 8]
        if kind == b"IDAT":
            break
        chunks[kind] = data[position + 8:position + 8 + length]
        position += 12 + length
    return chunks


@pytest.mark.parametrize("channels,dtype", [(3, np.uint8), (1, np.uint8), (3, np.uint16), (4, np.uint16)])
def test_png_gamma_chromaticity_and_srgb_chunks_are_kept(tmp_path, channels, dtype, caplog):
    """A PNG without an ICC profile says how to show its pixels with gAMA/cHRM (or sRGB): dropped,
    a viewer shows the restored picture brighter or darker than the source."""
    import struct
    import zlib

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    source = tmp_path / "g.png"
    pixels = random_pixels(channels, dtype)
    encoded = cv2.imencode(".png", pixels[..., ::-1] if channels >= 3 else pixels)[1].tobytes()
    colour = {b"gAMA": struct.pack(">I", 55556),
              b"cHRM": struct.pack(">8I", 31270, 32900, 64000, 33000, 30000, 60000, 15000, 6000)}
    source.write_bytes(encoded[:33] + b"".join(chunk(k, v) for k, v in colour.items()) + encoded[33:])
    image = read_image(source)
    assert image.png_colour == colour
    write_image(tmp_path / "o.png", image)
    written = _png_chunk_payloads(tmp_path / "o.png")
    assert {k: written.get(k) for k in colour} == colour
    assert np.array_equal(read_image(tmp_path / "o.png").pixels, image.pixels)
    if dtype == np.uint8 and channels == 3:
        with caplog.at_level("INFO", logger="vidrestore"):
            write_image(tmp_path / "o.jpg", image)
        assert "gAMA/cHRM chunks have no JPEG equivalent" in caplog.text
        PillowImage.fromarray(pixels).save(tmp_path / "s.png")  # Pillow writes no colour chunks
        assert read_image(tmp_path / "s.png").png_colour is None
        from PIL.PngImagePlugin import PngInfo

        info = PngInfo()
        info.add(b"sRGB", b"\x01")
        PillowImage.fromarray(pixels).save(tmp_path / "r.png", pnginfo=info)
        write_image(tmp_path / "r2.png", read_image(tmp_path / "r.png"))
        assert _png_chunk_payloads(tmp_path / "r2.png")[b"sRGB"] == b"\x01"
    # With an ICC profile too, the sRGB chunk goes (PNG allows one of them; libpng drops the later
    # iCCP), as Pillow does for 8-bit.
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    for depth in (np.uint8, np.uint16):
        write_image(tmp_path / "both.png", Image(random_pixels(3, depth), icc_profile=icc,
                                                 png_colour={b"sRGB": b"\x00", **colour}))
        written = _png_chunk_payloads(tmp_path / "both.png")
        assert b"sRGB" not in written and b"iCCP" in written and written[b"gAMA"] == colour[b"gAMA"]


def test_xmp_too_long_for_jpeg_and_a_huge_maker_note(tmp_path, caplog):
    xmp = b"<x:xmpmeta>" + b" " * 70_000 + b"</x:xmpmeta>"
    write_image(tmp_path / "x.jpg", Image(random_pixels(3, np.uint8), xmp=xmp, exif=camera_exif()))
    assert "does not fit a JPEG segment; not written" in caplog.text
    with PillowImage.open(tmp_path / "x.jpg") as picture:
        assert picture.getexif().get(0x010F) == "Canon"
    exif = PillowImage.Exif()
    exif.load(camera_exif())
    exif.get_ifd(0x8769)[0x927C] = b"\0" * 70_000
    write_image(tmp_path / "m.jpg", Image(random_pixels(3, np.uint8), exif=exif.tobytes()))
    with PillowImage.open(tmp_path / "m.jpg") as picture:  # the maker note goes, the rest stays
        kept = picture.getexif()
        assert kept.get(0x010F) == "Canon" and kept.get_ifd(0x8769)[0x9003] == "2024:05:01 10:00:00"


def test_a_lossless_webp_with_a_large_icc_profile_is_lossless(tmp_path):
    profile = SRGB_ICC + b"\0" * 8000  # ICC chunk before the picture, past any fixed-size peek
    PillowImage.fromarray(random_pixels(3, np.uint8)).save(tmp_path / "l.webp", lossless=True, icc_profile=profile)
    assert read_image(tmp_path / "l.webp").lossless
