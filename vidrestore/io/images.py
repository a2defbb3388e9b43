"""Read and write still images (PNG, JPEG, WebP, TIFF, BMP) without losing what the format holds.

:func:`read_image` returns an :class:`Image`: pixels ``(H, W, C)`` upright (EXIF orientation
applied), C = 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA, dtype ``uint8``, or ``uint16`` for 16-bit
sources (``float32`` for floating-point TIFF), plus the ICC profile and EXIF bytes (orientation
reset to 1). Palette images become RGB, or RGBA when they carry transparency (gray, or gray + alpha,
when every visible palette colour is a gray and no RGB ICC profile says otherwise); CMYK becomes RGB
(through its ICC profile to sRGB when it has one); 1-bit becomes 8-bit gray. Animated PNG,
WebP and GIF are refused: restoring the first frame alone would silently drop the others.

Pillow decodes everything except 16-bit colour, which it can only give as 8-bit; those PNG and
TIFF files are decoded by OpenCV instead, with metadata still taken from Pillow. Floating-point
colour TIFF, which Pillow cannot open at all, is decoded by OpenCV alone (no ICC, EXIF or
orientation).

:func:`write_image` picks the format from the suffix and writes atomically. What each keeps:

=======  =========  =====  ===  ====  ==============================================
format   max depth  alpha  ICC  EXIF  notes
=======  =========  =====  ===  ====  ==============================================
PNG      16         yes    yes  yes   lossless; gAMA/cHRM/sRGB kept
TIFF     16         yes    yes  yes   lossless (deflate)
WebP     8          yes    yes  yes   lossy unless ``lossless=True``; gray stored as RGB
JPEG     8          no     yes  yes   lossy; 4:4:4 chroma at quality ≥ 90
BMP      8          no     no   no    lossless
=======  =========  =====  ===  ====  ==============================================

Deeper pixels are rounded to 8 bits for 8-bit formats; ``float32`` is written as 16-bit where
the format allows, else 8-bit; 16-bit gray+alpha is written as 16-bit RGBA.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image as PillowImage
from PIL import ImageCms, ImageFile, UnidentifiedImageError

from vidrestore.errors import CorruptMediaError, MediaError, UnsupportedFormatError
from vidrestore.io._files import atomic_output, require_file, unidentified_error
from vidrestore.io.convert import from_float, gray_to_rgb, merge_alpha, split_alpha

__all__ = ["Image", "image_size", "read_image", "write_image"]

logger = logging.getLogger(__name__)

# A truncated file must fail loudly, never come back half grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False

_ORIENTATION_TAG = 0x0112
_PIXEL_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32))
# Pillow reports MPO for multi-picture camera JPEGs; we read their first picture as a JPEG.
_READABLE_FORMATS = {"PNG": "PNG", "JPEG": "JPEG", "MPO": "JPEG", "WEBP": "WEBP", "TIFF": "TIFF", "BMP": "BMP"}
# Formats whose extra frames are an animation: refused, never cut to the first frame. (A TIFF's
# extra pages and an MPO's extra pictures, previews or depth maps, are not: the first is the image.)
_ANIMATED_FORMATS = frozenset({"PNG", "WEBP", "GIF"})
# Pillow modes that need converting before they become an array, and to what.
_MODE_CONVERSIONS = {"1": "L", "La": "LA", "PA": "RGBA", "RGBX": "RGB", "RGBa": "RGBA", "CMYK": "RGB", "YCbCr": "RGB"}
_ARRAY_MODES = {"L", "LA", "RGB", "RGBA", "F"}
# Baseline TIFF tags that describe the pixel layout of one file. In a TIFF, Pillow's EXIF view is
# the whole image directory, so these are dropped: copied into another file they would lie.
_TIFF_LAYOUT_TAGS = frozenset(
    {
        254,
        255,
        256,
        257,
        258,
        259,
        262,
        266,
        273,
        277,
        278,
        279,
        280,
        281,
        284,
        317,
        320,
        322,
        323,
        324,
        325,
        338,
        339,
        340,
        341,
        347,
        530,
        531,
        532,
        34675,
        # Offsets into the source file (sub-images, a JPEG thumbnail) and Photoshop's layers and
        # image resources, which describe the source's pixels, not the restored ones.
        330,
        513,
        514,
        34377,
        37724,
    }
)
_SRGB_PROFILE = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
_JPEG_SEGMENT = 65535  # bytes in one JPEG marker segment, its 2-byte length included


@dataclass(frozen=True)
class _WriteFormat:
    """What one output format can hold, and how Pillow/OpenCV name it."""

    pillow_name: str
    max_bit_depth: int
    alpha: bool
    metadata: bool  # ICC profile and EXIF


_WRITE_FORMATS = {
    ".png": _WriteFormat("PNG", 16, alpha=True, metadata=True),
    ".tif": _WriteFormat("TIFF", 16, alpha=True, metadata=True),
    ".tiff": _WriteFormat("TIFF", 16, alpha=True, metadata=True),
    ".webp": _WriteFormat("WEBP", 8, alpha=True, metadata=True),
    ".jpg": _WriteFormat("JPEG", 8, alpha=False, metadata=True),
    ".jpeg": _WriteFormat("JPEG", 8, alpha=False, metadata=True),
    ".jpe": _WriteFormat("JPEG", 8, alpha=False, metadata=True),
    ".jfif": _WriteFormat("JPEG", 8, alpha=False, metadata=True),
    ".bmp": _WriteFormat("BMP", 8, alpha=False, metadata=False),  # Pillow reads 32-bit BMP back as RGB
}
_IMAGE_SUFFIXES = frozenset(_WRITE_FORMATS)


@dataclass
class Image:
    """A decoded still image and the metadata worth carrying to the output.

    Attributes:
        pixels: ``(H, W, C)``, upright; C = 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA; ``uint8``
            [0, 255], ``uint16`` [0, 65535] or ``float32`` (nominally [0, 1]).
        icc_profile: the embedded ICC profile describing ``pixels``, or None (assume sRGB).
        exif: raw EXIF (``b"Exif\\0\\0"`` + TIFF structure) with orientation 1, or None.
        source_format: Pillow's name of the file format read ("PNG", "JPEG", ...), "" if made in memory.
        dpi: print resolution (x, y) in dots per inch, or None.
        xmp: raw XMP packet, or None.
        text: PNG text chunks (title, author, ...), or None.
        png_colour: a PNG's gAMA, cHRM and sRGB chunk payloads by chunk type (how a viewer shows
            the pixels when there is no ICC profile), or None; written back to PNG outputs.
        lossless: the source was stored losslessly (PNG, TIFF, BMP, lossless WebP); a WebP
            output of it is written lossless too.
    """

    pixels: np.ndarray
    icc_profile: bytes | None = None
    exif: bytes | None = None
    source_format: str = ""
    dpi: tuple[float, float] | None = None
    xmp: bytes | None = None
    text: dict[str, str] | None = None
    png_colour: dict[bytes, bytes] | None = None
    lossless: bool = False

    def __post_init__(self) -> None:
        if self.pixels.ndim != 3 or self.pixels.shape[2] not in (1, 2, 3, 4) or self.pixels.dtype not in _PIXEL_DTYPES:
            raise ValueError(
                f"Image: pixels must be (H, W, 1|2|3|4) uint8/uint16/float32, "
                f"got {self.pixels.shape} {self.pixels.dtype}"
            )

    @property
    def has_alpha(self) -> bool:
        """True for gray+alpha and RGBA."""
        return self.pixels.shape[2] in (2, 4)

    @property
    def is_gray(self) -> bool:
        """True for gray and gray+alpha."""
        return self.pixels.shape[2] in (1, 2)

    @property
    def bit_depth(self) -> int:
        """Bits per sample: 8, 16, or 32 for float."""
        return self.pixels.dtype.itemsize * 8


@contextmanager
def _decoding(path: Path) -> Iterator[None]:
    """Turn what Pillow raises for a bad file into the package's media errors, naming ``path``."""
    try:
        yield
    except UnidentifiedImageError as error:
        raise unidentified_error(path, _IMAGE_SUFFIXES, "image") from error
    except PillowImage.DecompressionBombError as error:
        raise UnsupportedFormatError(path, "image is too large to decode safely") from error
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error) as error:
        raise CorruptMediaError(path, f"truncated or damaged image data ({type(error).__name__})") from error


def image_size(path: str | Path, *, verify: bool = False) -> tuple[int, int]:
    """``(width, height)`` of an image file as stored, from its header — or, with ``verify``, after
    decoding it whole, so a truncated file fails here rather than later.

    Raises the same errors as :func:`read_image`."""
    path = require_file(path)
    with _decoding(path):
        opened = _open(path)
        if isinstance(opened, np.ndarray):
            return opened.shape[1], opened.shape[0]
        with opened as picture:
            if verify:
                picture.load()
            return picture.size


def read_image(path: str | Path) -> Image:
    """Decode a PNG, JPEG, WebP, TIFF or BMP file into an upright :class:`Image`.

    Raises:
        MediaError: the file is missing or not a regular file.
        CorruptMediaError: the file is empty, truncated or damaged.
        UnsupportedFormatError: the file is another format, an animation, or a pixel layout we do
            not read.
    """
    path = require_file(path)
    with _decoding(path):
        opened = _open(path)
        if isinstance(opened, np.ndarray):
            return Image(opened, source_format="TIFF", lossless=True)
        with opened as picture:
            return _read_picture(path, picture)


def _open(path: Path) -> PillowImage.Image | np.ndarray:
    """Pillow's lazily decoded image, or the pixels of a floating-point colour TIFF (which Pillow cannot open)."""
    try:
        return PillowImage.open(path)
    except UnidentifiedImageError:
        pixels = _read_float_colour_tiff(path)
        if pixels is None:
            raise
        return pixels


def _read_picture(path: Path, picture: PillowImage.Image) -> Image:
    """Decode an opened Pillow image into an upright :class:`Image`, as :func:`read_image` describes."""
    if picture.format in _ANIMATED_FORMATS and getattr(picture, "n_frames", 1) > 1:
        raise UnsupportedFormatError(
            path, f"animated image ({picture.n_frames} frames): only stills are restored; convert it to a video first"
        )
    source_format = _READABLE_FORMATS.get(picture.format or "")
    if source_format is None:
        raise UnsupportedFormatError(
            path, f"{picture.format} images are not supported (PNG, JPEG, WebP, TIFF, BMP are)"
        )
    raw_mode = _raw_mode(picture)
    if source_format == "TIFF":  # Pillow opens signed gray samples as unsigned ones
        tags = getattr(picture, "tag_v2", {})
        sample_format, bits = (v[0] if isinstance(v, tuple) else v for v in (tags.get(339, 1), tags.get(258, 8)))
        if error := _unsupported_samples(path, bits, sample_format, gray_wide=False):
            raise error
    tiff_orientation = _take_tiff_orientation(picture) if source_format == "TIFF" else 1
    picture.load()
    icc_profile = picture.info.get("icc_profile") or None
    exif, orientation = _upright_exif(picture, source_format, tiff_orientation if source_format == "TIFF" else None)
    if ";16" in raw_mode and not picture.mode.startswith("I"):  # 16-bit colour or gray+alpha
        pixels = _read_16_bit_colour(path, gray_alpha=raw_mode.startswith("LA"), tiff=source_format == "TIFF")
    else:
        pixels, icc_profile = _pixels_from_pillow(path, picture, icc_profile)
    if source_format == "TIFF" and getattr(picture, "n_frames", 1) > 1:
        logger.warning("%s: %d pages; only the first is restored (split the others into files of their own)",
                       path, picture.n_frames)
    dpi = picture.info.get("dpi")
    if source_format == "TIFF" and not {282, 283} <= set(getattr(picture, "tag_v2", {})):
        dpi = None  # Pillow reports (1, 1) for a TIFF without resolution tags
    xmp = picture.info.get("xmp") or picture.info.get("XML:com.adobe.xmp") or None
    text = {k: v for k, v in getattr(picture, "text", {}).items() if k != "XML:com.adobe.xmp" and isinstance(v, str)}
    return Image(
        _apply_orientation(pixels, orientation), icc_profile, exif, source_format,
        dpi=(float(dpi[0]), float(dpi[1])) if dpi and len(dpi) == 2 and min(dpi) > 0 else None,
        xmp=xmp.encode() if isinstance(xmp, str) else xmp, text=(text or None) if source_format == "PNG" else None,
        png_colour=_png_colour(picture.info) if source_format == "PNG" else None,
        lossless=source_format in ("PNG", "TIFF", "BMP") or (source_format == "WEBP" and _is_lossless_webp(path)),
    )


def _is_lossless_webp(path: Path) -> bool:
    """Whether a WebP's picture is VP8L (lossless), not VP8: the first image chunk found walking the
    RIFF chunks (a VP8X file puts ICC, EXIF or XMP chunks of any size before it)."""
    with path.open("rb") as file:
        if file.read(12)[8:12] != b"WEBP":
            return False
        while header := file.read(8):
            if len(header) < 8:
                return False
            kind, size = header[:4], struct.unpack("<I", header[4:])[0]
            if kind in (b"VP8L", b"VP8 ", b"ANMF"):
                return kind == b"VP8L"
            file.seek(size + (size & 1), io.SEEK_CUR)  # payloads are padded to an even length
    return False


def write_image(path: str | Path, image: Image, *, quality: int = 95, lossless: bool = False) -> None:
    """Encode ``image`` to ``path`` (format from the suffix), atomically; parent folders are created.

    Args:
        quality: JPEG/WebP quality, 1-100 (for lossless WebP: compression effort).
        lossless: WebP only: lossless encoding (PNG, TIFF, BMP are always lossless).

    Raises:
        UnsupportedFormatError: unknown suffix, alpha to JPEG/BMP, or ``lossless`` for JPEG.
        MediaError: the file could not be written.
    """
    path = Path(path)
    output_format = _WRITE_FORMATS.get(path.suffix.lower())
    if output_format is None:
        raise UnsupportedFormatError(
            path, f"cannot write {path.suffix or 'suffix-less'} files; use one of {sorted(_WRITE_FORMATS)}"
        )
    if image.has_alpha and not output_format.alpha:
        raise UnsupportedFormatError(
            path, f"{output_format.pillow_name} cannot hold the image's transparency: write .png, .tif or .webp "
                  "to keep it (or, in Python, drop it first with vidrestore.io.convert.split_alpha)"
        )
    # WebP stores gray as RGB, and 16-bit gray + alpha is written as RGBA: a gray ICC profile cannot
    # describe those pixels (readers reject it), so it goes.
    widened = image.is_gray and (output_format.pillow_name == "WEBP" or (image.has_alpha and image.pixels.dtype != np.uint8
                                                                         and output_format.max_bit_depth == 16))
    if widened and _gray_profile(image.icc_profile):
        logger.info("%s: %s stores this gray picture as RGB, which its gray ICC profile cannot describe; the profile "
                    "is dropped", path, output_format.pillow_name)
        image = dataclasses.replace(image, icc_profile=None)
    if image.has_alpha and image.is_gray and output_format.pillow_name == "WEBP":
        image = dataclasses.replace(image, pixels=_gray_alpha_to_rgba(image.pixels))
    if lossless and output_format.pillow_name == "JPEG":
        raise UnsupportedFormatError(path, "JPEG cannot be written losslessly; use PNG, TIFF or lossless WebP")
    if not output_format.metadata and (image.icc_profile or image.exif):
        logger.info("%s: %s cannot hold ICC/EXIF metadata; it is dropped", path, output_format.pillow_name)
    if image.png_colour and not image.icc_profile and output_format.pillow_name != "PNG":
        logger.info("%s: the PNG's %s chunks have no %s equivalent; they are dropped (write .png to keep them)",
                    path, "/".join(kind.decode() for kind in image.png_colour), output_format.pillow_name)
    pixels = _fit_bit_depth(image.pixels, output_format.max_bit_depth)
    if pixels.dtype == np.uint16 and pixels.shape[2] > 1:
        data = _encode_16_bit_colour(path, pixels, image, output_format)
    else:
        data = _encode_with_pillow(path, pixels, image, output_format, quality=quality, lossless=lossless)
    try:
        with atomic_output(path) as temporary:
            temporary.write_bytes(data)
    except OSError as error:
        raise MediaError(path, f"could not write file: {error.strerror or error}") from error


def _gray_profile(icc_profile: bytes | None) -> bool:
    """Whether an ICC profile describes gray pixels (its header's colour space field)."""
    return icc_profile is not None and icc_profile[16:20] == b"GRAY"


def _png_colour(info: dict[str, object]) -> dict[bytes, bytes] | None:
    """The gAMA, cHRM and sRGB payloads of a PNG from what Pillow parsed of them (exact: Pillow
    divides the stored integers by 100 000), or None when it has none."""
    chunks: dict[bytes, bytes] = {}
    gamma, chromaticity, srgb = info.get("gamma"), info.get("chromaticity"), info.get("srgb")
    if isinstance(gamma, float) and gamma > 0:
        chunks[b"gAMA"] = struct.pack(">I", round(gamma * 100000))
    if isinstance(chromaticity, tuple) and len(chromaticity) == 8:
        chunks[b"cHRM"] = struct.pack(">8I", *(round(value * 100000) for value in chromaticity))
    if isinstance(srgb, int) and 0 <= srgb <= 3:
        chunks[b"sRGB"] = bytes([srgb])
    return chunks or None


def _raw_mode(picture: PillowImage.Image) -> str:
    """The decoder's raw mode ("RGB;16B", ...): the only place Pillow shows a 16-bit colour source."""
    if not picture.tile:
        return ""
    arguments = picture.tile[0].args
    return arguments if isinstance(arguments, str) else str(arguments[0]) if arguments else ""


def _take_tiff_orientation(picture: PillowImage.Image) -> int:
    """A TIFF's EXIF orientation (1-8), taken out of the picture before it loads, so that its pixels
    load as stored on every Pillow version and are turned upright here, as other formats' are:
    Pillow 13 turns a TIFF as it loads (and scrambles gray and RGBA ones turned by 90 degrees),
    earlier versions do not. Also reads the Exif/GPS directories now: Pillow closes a one-page TIFF
    once its pixels are loaded, and reads those from the file when first asked for them."""
    exif = picture.getexif()
    _exif_groups(exif)
    orientation = picture.tag_v2.get(_ORIENTATION_TAG, 1)
    if _ORIENTATION_TAG in picture.tag_v2:
        del picture.tag_v2[_ORIENTATION_TAG]
    if _ORIENTATION_TAG in exif:
        del exif[_ORIENTATION_TAG]
    tile_size = getattr(picture, "_tile_size", None)  # Pillow 13: the stored size (its size is the upright one)
    if tile_size is not None:
        picture._size = tile_size
    return orientation if orientation in range(1, 9) else 1


def _exif_groups(exif: PillowImage.Exif) -> dict[int, dict[int, Any]]:
    """The Exif and GPS directories (and the Interop one, found through the Exif one and nested in
    it) as dictionaries Pillow writes as directories of their own; reading them also makes Pillow
    keep them (it reads them from the file when first asked)."""
    from PIL import TiffTags

    groups = {tag: dict(exif.get_ifd(tag)) for tag in TiffTags.TAGS_V2_GROUPS if tag in exif}
    if 0xA005 in groups.get(0x8769, {}):  # an offset into the source EXIF: carried as a directory
        groups[0x8769][0xA005] = dict(exif.get_ifd(0xA005))
    return groups


def _upright_exif(picture: PillowImage.Image, source_format: str, orientation: int | None = None
                  ) -> tuple[bytes | None, int]:
    """Return (EXIF bytes with orientation reset to 1, or None; the original orientation 1-8, or
    ``orientation`` when the caller took it out already). A turn by 90 degrees swaps the Exif
    directory's pixel dimensions too."""
    exif = picture.getexif()
    if source_format == "TIFF":
        for tag in _TIFF_LAYOUT_TAGS & set(exif):
            del exif[tag]
    if orientation is None:
        orientation = exif.get(_ORIENTATION_TAG, 1)
    if orientation not in range(1, 9):
        orientation = 1
    if _ORIENTATION_TAG in exif:
        exif[_ORIENTATION_TAG] = 1
    if orientation in (5, 6, 7, 8) and 0x8769 in exif:
        sizes = exif.get_ifd(0x8769)
        if 0xA002 in sizes and 0xA003 in sizes:  # PixelXDimension, PixelYDimension
            sizes[0xA002], sizes[0xA003] = sizes[0xA003], sizes[0xA002]
    try:
        return (exif.tobytes() if len(exif) else None), orientation
    except (ValueError, TypeError, struct.error) as error:  # odd vendor tags Pillow cannot re-serialise
        logger.warning("%s: EXIF could not be carried over (%s); it is dropped", picture.filename, error)
        return None, orientation


def _pixels_from_pillow(
    path: Path, picture: PillowImage.Image, icc_profile: bytes | None
) -> tuple[np.ndarray, bytes | None]:
    """Convert a loaded Pillow image to ``(H, W, C)`` pixels; returns them and the ICC profile that fits them."""
    mode = picture.mode
    if mode.startswith("I;16"):
        gray = np.asarray(picture).astype(np.uint16)
        key = picture.info.get("transparency")
        if isinstance(key, int):  # a tRNS colour key: that gray value is transparent
            return np.stack([gray, np.where(gray == key, 0, 65535).astype(np.uint16)], axis=-1), icc_profile
        return gray[..., None], icc_profile
    if mode == "I":
        values = np.asarray(picture)
        if values.min(initial=0) < 0 or values.max(initial=0) > 65535:
            raise UnsupportedFormatError(path, "32-bit integer pixels outside the 16-bit range are not supported")
        return values.astype(np.uint16)[..., None], icc_profile
    if mode == "CMYK" and icc_profile:
        try:
            source_profile = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
            converted = ImageCms.profileToProfile(picture, source_profile, _SRGB_PROFILE, outputMode="RGB")
            return np.asarray(converted), _SRGB_PROFILE.tobytes()
        except ImageCms.PyCMSError as error:
            logger.warning("%s: CMYK ICC profile unusable (%s); converting without it", path, error)
    rgb_profile = icc_profile is not None and not _gray_profile(icc_profile)
    if mode in ("P", "PA") and not rgb_profile and _gray_palette(picture):
        # An indexed picture whose visible colours are all grays (common for scans and line art)
        # is gray data: restored and written as gray, not widened to RGB. (An RGB ICC profile
        # keeps it RGB: a gray file cannot carry one.)
        if mode == "PA" or "transparency" in picture.info:
            rgba = picture.convert("RGBA")
            return np.stack([np.asarray(rgba.getchannel("R")), np.asarray(rgba.getchannel("A"))], axis=-1), icc_profile
        return np.asarray(picture.convert("L"))[..., None], icc_profile  # exact: R = G = B
    if "transparency" in picture.info and mode in ("P", "L", "RGB"):
        target = "LA" if mode == "L" else "RGBA"
    else:
        target = _MODE_CONVERSIONS.get(mode, "RGB" if mode == "P" else mode)
    if target not in _ARRAY_MODES:
        raise UnsupportedFormatError(path, f"pixel mode {mode} is not supported")
    if mode == "CMYK":
        icc_profile = None  # a CMYK profile does not describe the RGB result
    pixels = np.asarray(picture if target == mode else picture.convert(target))
    return (pixels[..., None] if pixels.ndim == 2 else pixels), icc_profile


def _gray_palette(picture: PillowImage.Image) -> bool:
    """Whether every palette entry the pixels use, and do not hide (a tRNS alpha of 0), has R == G == B."""
    if picture.palette is None or picture.palette.mode != "RGB":
        return False
    palette = np.asarray(picture.getpalette("RGB") or [], dtype=np.uint8).reshape(-1, 3)
    counts = np.asarray(picture.histogram()[:256])  # of the indices (PA: the P channel's come first)
    if len(palette) == 0 or counts[len(palette):].any():  # an index past the palette: let Pillow decide
        return False
    visible = counts[: len(palette)] > 0
    transparency = picture.info.get("transparency") if picture.mode == "P" else None
    if isinstance(transparency, int) and transparency < len(palette):
        visible[transparency] = False
    elif isinstance(transparency, bytes):
        alpha = np.frombuffer(transparency[: len(palette)], dtype=np.uint8)
        visible[: len(alpha)] &= alpha > 0
    colours = palette[visible]
    return bool((colours == colours[:, :1]).all())


def _read_16_bit_colour(path: Path, *, gray_alpha: bool, tiff: bool = False) -> np.ndarray:
    """Decode 16-bit colour PNG/TIFF with OpenCV (as stored: orientation is applied by the caller)
    into RGB(A) or gray+alpha uint16. OpenCV 5 cannot decode a TIFF whose orientation turns it by 90
    degrees ("original_ptr == real_mat.data"): a TIFF is decoded with its orientation tag set to 1."""
    if tiff:
        data = _tiff_orientation_cleared(path.read_bytes())
        decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    else:
        decoded = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if decoded is None or decoded.dtype != np.uint16 or decoded.ndim != 3:
        raise CorruptMediaError(path, "16-bit colour data could not be decoded")
    if decoded.shape[2] in (3, 4):
        decoded = cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB if decoded.shape[2] == 3 else cv2.COLOR_BGRA2RGBA)
    if gray_alpha and decoded.shape[2] == 4:  # OpenCV expands gray+alpha to RGBA
        return decoded[..., [0, 3]]
    return decoded


def _tiff_orientation_cleared(tiff: bytes) -> bytes:
    """A classic TIFF's bytes with its first directory's Orientation (a SHORT in the entry) set to 1."""
    order = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    if order is None or len(tiff) < 8 or struct.unpack(order + "H", tiff[2:4])[0] != 42:
        return tiff
    for entry, tag, kind, _ in _directory_entries(tiff, struct.unpack(order + "I", tiff[4:8])[0], order):
        if tag == _ORIENTATION_TAG and kind == 3:
            return tiff[: entry + 8] + struct.pack(order + "H", 1) + tiff[entry + 10 :]
    return tiff


def _directory_entries(data: bytes | bytearray, at: int, order: str) -> Iterator[tuple[int, int, int, int]]:
    """(position, tag, type, count) of each 12-byte entry of the TIFF directory at ``at`` in ``data``
    (entries that would run past its end are left out)."""
    if at + 2 > len(data):
        return
    count = struct.unpack(order + "H", data[at : at + 2])[0]
    for entry in range(at + 2, min(at + 2 + 12 * count, len(data) - 11), 12):
        yield (entry, *struct.unpack(order + "HHI", data[entry : entry + 8]))


def _read_float_colour_tiff(path: Path) -> np.ndarray | None:
    """Decode a floating-point TIFF Pillow cannot open (32-bit RGB(A), 64-bit gray or RGB(A)) with
    OpenCV into float32, values as stored (OpenCV reads no ICC profile, EXIF or orientation from it);
    None for any other file that is not a TIFF or whose samples cannot be told.

    Raises:
        UnsupportedFormatError: a TIFF whose samples neither reader takes (16-bit float, signed or
            32-bit integers), named as such rather than as damaged data.
    """
    with path.open("rb") as file:
        header = file.read(8)
        if header[:4] not in (b"II*\0", b"MM\0*"):
            return None
    samples = _tiff_samples(path, header)
    if samples is not None and (error := _unsupported_samples(path, *samples, gray_wide=True)):
        raise error  # before OpenCV tries it (and prints its own complaint)
    decoded = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if decoded is not None and decoded.dtype in (np.float32, np.float64) and decoded.ndim in (2, 3):
        if decoded.ndim == 2:
            return decoded.astype(np.float32)[..., None]
        if decoded.shape[2] in (3, 4):
            conversion = cv2.COLOR_BGR2RGB if decoded.shape[2] == 3 else cv2.COLOR_BGRA2RGBA
            return cv2.cvtColor(decoded.astype(np.float32), conversion)
    return None  # a layout that is read: the data is damaged


def _unsupported_samples(path: Path, bits: int, sample_format: int, *, gray_wide: bool) -> UnsupportedFormatError | None:
    """The error for TIFF samples vidrestore does not read (signed integers, floats other than 32 and
    64 bits; with ``gray_wide`` also unsigned integers over 16 bits, which gray pictures may use when
    their values fit 16 bits), or None."""
    if sample_format == 2 or (sample_format == 3 and bits not in (32, 64)) or (gray_wide and sample_format == 1 and bits > 16):
        kind = {1: "unsigned integer", 2: "signed integer", 3: "floating-point"}[sample_format]
        return UnsupportedFormatError(path, f"TIFF with {bits}-bit {kind} samples is not supported (8- or 16-bit "
                                            "unsigned integers and 32- or 64-bit floating point are)")
    return None


def _tiff_samples(path: Path, header: bytes) -> tuple[int, int] | None:
    """(BitsPerSample, SampleFormat) of a TIFF's first directory, or None when they cannot be read."""
    order = "<" if header[:2] == b"II" else ">"
    values = {}
    with path.open("rb") as file:
        file.seek(struct.unpack(order + "I", header[4:8])[0])
        directory = file.read(2 + 12 * 4096)
        for entry, tag, kind, count in _directory_entries(directory, 0, order):
            if tag in (258, 339) and kind == 3 and count >= 1:  # each sample's value; the first is read
                if count > 2:
                    file.seek(struct.unpack(order + "I", directory[entry + 8 : entry + 12])[0])
                    first = file.read(2)
                else:
                    first = directory[entry + 8 : entry + 10]
                if len(first) == 2:
                    values[tag] = struct.unpack(order + "H", first)[0]
    if 258 not in values or values.get(339, 1) not in (1, 2, 3):
        return None
    return values[258], values.get(339, 1)


def _apply_orientation(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Turn ``(H, W, C)`` pixels upright for EXIF orientation 1-8 (same results as Pillow's exif_transpose)."""
    if orientation in (5, 6, 7, 8):
        # 5: transpose, 6: rotate 90° clockwise, 7: transverse, 8: rotate 90° counter-clockwise.
        pixels = pixels.swapaxes(0, 1)
        orientation = {5: 1, 6: 2, 7: 3, 8: 4}[orientation]
    if orientation in (2, 3):  # mirror left-right
        pixels = pixels[:, ::-1]
    if orientation in (3, 4):  # mirror top-bottom
        pixels = pixels[::-1]
    return np.ascontiguousarray(pixels)


def _gray_alpha_to_rgba(pixels: np.ndarray) -> np.ndarray:
    gray, alpha = split_alpha(pixels)
    return merge_alpha(gray_to_rgb(gray), alpha)


def _fit_bit_depth(pixels: np.ndarray, max_bit_depth: int) -> np.ndarray:
    """Pixels as uint8, or uint16 where the format holds 16 bits; float is taken as [0, 1]."""
    if pixels.dtype == np.float32:
        return from_float(pixels, np.uint16 if max_bit_depth >= 16 else np.uint8)
    if pixels.dtype == np.uint16 and max_bit_depth < 16:
        return np.rint(pixels / 257.0).astype(np.uint8)
    return pixels


def _encode_with_pillow(
    path: Path, pixels: np.ndarray, image: Image, output_format: _WriteFormat, *, quality: int, lossless: bool
) -> bytes:
    # Pillow infers the mode: L, LA, RGB, RGBA for uint8; I;16 for 2-D uint16.
    picture = PillowImage.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels)
    options: dict[str, object] = {}
    if output_format.metadata:
        options.update(
            {key: value for key, value in (("icc_profile", image.icc_profile), ("exif", image.exif)) if value}
        )
        if image.dpi and output_format.pillow_name in ("PNG", "JPEG", "TIFF"):
            options["dpi"] = image.dpi
        if image.xmp and output_format.pillow_name in ("JPEG", "WEBP"):
            if output_format.pillow_name == "JPEG" and len(image.xmp) > _JPEG_SEGMENT - 29:
                logger.warning("%s: XMP of %d bytes does not fit a JPEG segment; not written", path, len(image.xmp))
            else:
                options["xmp"] = image.xmp
        if image.xmp and output_format.pillow_name == "TIFF":
            from PIL.TiffImagePlugin import ImageFileDirectory_v2

            tiffinfo = ImageFileDirectory_v2()
            tiffinfo[700], tiffinfo.tagtype[700] = image.xmp, 1  # XMP: BYTE
            options["tiffinfo"] = tiffinfo
        if output_format.pillow_name == "PNG" and (image.text or image.xmp or image.png_colour):
            from PIL.PngImagePlugin import PngInfo

            info = PngInfo()
            for kind, payload in (image.png_colour or {}).items():
                info.add(kind, payload)  # Pillow writes these before PLTE and IDAT, as PNG requires
            for key, value in (image.text or {}).items():
                info.add_itxt(key, value)
            if image.xmp:
                info.add_itxt("XML:com.adobe.xmp", image.xmp.decode("utf-8", "replace"))
            options["pnginfo"] = info
    match output_format.pillow_name:
        case "JPEG":
            options.update(quality=quality, subsampling=0 if quality >= 90 else 2)
        case "WEBP":
            options.update(quality=quality, lossless=lossless, exact=True)
        case "TIFF":
            options.update(compression="tiff_deflate")
        case "PNG":
            # zlib level 1, as OpenCV writes PNG: ~10x faster than Pillow's default 6 on photos
            # for files ~10 % larger; lossless either way.
            options.update(compress_level=1)
    if output_format.pillow_name == "TIFF" and image.exif and _has_exif_groups(image.exif):
        # Pillow's libtiff writer refuses the Exif/GPS directories (and prints libtiff's complaint):
        # the directory is rewritten with them, as for 16-bit colour.
        options.pop("exif")
        return _add_tiff_tags(path, _save(picture, "TIFF", options), image, pixels)
    try:
        return _save(picture, output_format.pillow_name, options)
    except (ValueError, RuntimeError, OSError) as error:
        exif_error = "exif" in str(error).lower() or (output_format.pillow_name == "TIFF" and isinstance(error, RuntimeError))
        if "exif" not in options or not exif_error:
            raise MediaError(path, f"could not encode {output_format.pillow_name}: {error}") from error
        # EXIF Pillow cannot write here: keep what fits, say what was dropped.
        reduced = _reduced_exif(image.exif, output_format.pillow_name)
        if reduced is not None:
            exif, what = reduced
            try:
                data = _save(picture, output_format.pillow_name, options | {"exif": exif})
                logger.warning("%s: %s; the other EXIF is kept", path, what)
                return data
            except (ValueError, RuntimeError, OSError):
                pass
        logger.warning("%s: EXIF not written (%s: %s); the picture and its other metadata are", path,
                       type(error).__name__, error)
        try:
            return _save(picture, output_format.pillow_name, {k: v for k, v in options.items() if k != "exif"})
        except (ValueError, RuntimeError, OSError) as second:
            raise MediaError(path, f"could not encode {output_format.pillow_name}: {second}") from second


def _has_exif_groups(raw: bytes) -> bool:
    """Whether ``raw`` EXIF points to directories of its own (Exif, GPS, Interop: what
    :func:`_exif_groups` carries)."""
    from PIL import TiffTags

    exif = PillowImage.Exif()
    exif.load(raw)
    return any(tag in exif for tag in TiffTags.TAGS_V2_GROUPS)


def _reduced_exif(raw: bytes, pillow_name: str) -> tuple[bytes, str] | None:
    """``raw`` EXIF without what usually stops ``pillow_name`` from writing it, and what that is:
    a JPEG segment holds 64 KiB (a maker note is what overflows it). None when there is nothing of
    the kind to drop."""
    exif = PillowImage.Exif()
    exif.load(raw)
    if pillow_name == "JPEG" and exif.get_ifd(0x8769).pop(0x927C, None) is not None:
        return exif.tobytes(), "the EXIF maker note does not fit a JPEG segment"
    return None


def _save(picture: PillowImage.Image, pillow_name: str, options: dict[str, object]) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, format=pillow_name, **options)
    return buffer.getvalue()


def _encode_16_bit_colour(path: Path, pixels: np.ndarray, image: Image, output_format: _WriteFormat) -> bytes:
    """Encode 16-bit RGB(A) (or gray+alpha, widened to RGBA) with OpenCV; the metadata is added to
    the PNG's chunks or the TIFF's directory."""
    if pixels.shape[2] == 2:
        pixels = _gray_alpha_to_rgba(pixels)
    conversion = cv2.COLOR_RGBA2BGRA if pixels.shape[2] == 4 else cv2.COLOR_RGB2BGR
    suffix = ".png" if output_format.pillow_name == "PNG" else ".tiff"
    encoded, data = cv2.imencode(suffix, cv2.cvtColor(pixels, conversion))
    if not encoded:
        raise MediaError(path, "OpenCV could not encode 16-bit colour pixels")
    if output_format.pillow_name == "PNG":
        return _add_png_metadata(data.tobytes(), image)
    return _add_tiff_tags(path, data.tobytes(), image, pixels)


def _add_tiff_tags(path: Path, tiff: bytes, image: Image, pixels: np.ndarray) -> bytes:
    """OpenCV's 16-bit colour TIFF holds the pixel layout alone: its first directory is rewritten at
    the end of the file (by Pillow, which writes the EXIF's sub-directories too) with what OpenCV
    leaves out added — ExtraSamples = 2 (unassociated alpha: without it readers take the 4th sample
    for unspecified data and drop the transparency), the EXIF, ICC profile, XMP and resolution. The
    pixel data stays where it is."""
    from PIL import TiffTags
    from PIL.TiffImagePlugin import ImageFileDirectory_v2

    if tiff[:4] not in (b"II*\0", b"MM\0*"):
        return tiff  # not classic TIFF: leave it as OpenCV wrote it
    directory = ImageFileDirectory_v2(ifh=tiff[:8])
    if image.exif:
        exif = PillowImage.Exif()
        exif.load(image.exif)
        groups = _exif_groups(exif)
        for tag in set(exif) - _TIFF_LAYOUT_TAGS:
            directory[tag] = groups.get(tag, exif[tag])
    with PillowImage.open(io.BytesIO(tiff)) as written:
        for tag, value in written.tag_v2.items():
            directory[tag], directory.tagtype[tag] = value, written.tag_v2.tagtype[tag]
        strips = written.tag_v2[273]
    added: dict[int, tuple[int, object]] = {}
    if pixels.shape[2] == 4:
        added[338] = (TiffTags.SHORT, 2)
    if image.icc_profile:
        added[34675] = (TiffTags.UNDEFINED, image.icc_profile)
    if image.xmp:
        added[700] = (TiffTags.BYTE, image.xmp)
    if image.dpi:
        added |= {282: (TiffTags.RATIONAL, image.dpi[0]), 283: (TiffTags.RATIONAL, image.dpi[1]), 296: (TiffTags.SHORT, 2)}
    for tag, (kind, value) in added.items():
        directory.tagtype[tag], directory[tag] = kind, value
    start = len(tiff) + len(tiff) % 2  # directories start on a word boundary
    order = "<" if tiff[:2] == b"II" else ">"
    try:
        serialised = directory.tobytes(start)
    except (ValueError, TypeError, struct.error) as error:  # odd vendor tags Pillow cannot re-serialise
        if not image.exif:
            raise
        logger.warning("%s: EXIF could not be written (%s); it is dropped", path, error)
        return _add_tiff_tags(path, tiff, dataclasses.replace(image, exif=None), pixels)
    written_directory = _keep_strip_offsets(path, bytearray(serialised), start, order, strips)
    return tiff[:4] + struct.pack(order + "I", start) + tiff[8:] + b"\0" * (start - len(tiff)) + written_directory


def _keep_strip_offsets(path: Path, directory: bytearray, start: int, order: str, strips: tuple[int, ...]) -> bytes:
    """Pillow moves StripOffsets past the directory it writes (where its own writer puts the pixels);
    here the pixels stay where OpenCV put them, so the tag gets its values back. ``directory`` is the
    directory's bytes, to be written at file offset ``start``."""
    for entry, tag, kind, count in _directory_entries(directory, 0, order):
        if tag == 273 and count == len(strips):
            values = struct.pack(order + ("H" if kind == 3 else "I") * count, *strips)
            at = entry + 8 if len(values) <= 4 else struct.unpack(order + "I", directory[entry + 8 : entry + 12])[0] - start
            directory[at : at + len(values)] = values
            return bytes(directory)
    raise MediaError(path, "could not place the TIFF's strip offsets")


def _add_png_metadata(png: bytes, image: Image) -> bytes:
    """Insert gAMA, cHRM, sRGB, iCCP, eXIf, pHYs and iTXt chunks (what Pillow writes for 8-bit) right
    after the IHDR chunk (signature 8 bytes + IHDR 25 bytes)."""
    # With an ICC profile no sRGB chunk (PNG allows one or the other; libpng drops the later iCCP), as Pillow does.
    chunks = [_png_chunk(kind, payload) for kind, payload in (image.png_colour or {}).items()
              if not (kind == b"sRGB" and image.icc_profile)]
    if image.icc_profile:
        chunks.append(_png_chunk(b"iCCP", b"ICC profile\0\0" + zlib.compress(image.icc_profile)))
    if image.exif:
        chunks.append(_png_chunk(b"eXIf", image.exif.removeprefix(b"Exif\0\0")))
    if image.dpi:  # pixels per metre, unit 1
        chunks.append(_png_chunk(b"pHYs", struct.pack(">IIB", *(round(d / 0.0254) for d in image.dpi), 1)))
    texts = dict(image.text or {})
    if image.xmp:
        texts["XML:com.adobe.xmp"] = image.xmp.decode("utf-8", "replace")
    for key, value in texts.items():  # iTXt: keyword, no compression, no language tag
        chunks.append(_png_chunk(b"iTXt", key.encode("latin-1", "replace")[:79] + b"\0\0\0\0\0" + value.encode()))
    header_end = 8 + 25
    return png[:header_end] + b"".join(chunks) + png[header_end:]


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
