"""Media I/O: the one place that converts formats.

Images (:mod:`.images`) and video (:mod:`.video`) are decoded into numpy pixels with their
metadata (ICC, EXIF, colour matrix/range, rotation, timestamps, audio) kept aside, and encoded
back atomically. :mod:`.convert` moves pixels between the stored form (uint8/uint16, gray/RGB,
with or without alpha) and the canonical float RGB form the networks take.
"""

from __future__ import annotations

from vidrestore.io.convert import (
    from_batch,
    from_float,
    gray_to_rgb,
    merge_alpha,
    rgb_to_gray,
    split_alpha,
    to_batch,
    to_float,
)
from vidrestore.io.images import Image, image_size, read_image, write_image
from vidrestore.io.video import Frame, VideoInfo, VideoReader, VideoWriter, check_writer, probe, write_video

__all__ = [
    "Frame",
    "Image",
    "VideoInfo",
    "VideoReader",
    "VideoWriter",
    "check_writer",
    "from_batch",
    "from_float",
    "gray_to_rgb",
    "merge_alpha",
    "probe",
    "image_size",
    "read_image",
    "rgb_to_gray",
    "split_alpha",
    "to_batch",
    "to_float",
    "write_image",
    "write_video",
]
