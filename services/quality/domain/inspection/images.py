"""Decoding camera images safely: the format and size are read from the header first,
so an oversized or malformed image is refused before any pixel buffer is allocated."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import Enum
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from services.runtime.config import QualitySettings
from services.runtime.errors import FieldViolation, InvalidArgument

# The service reads its limit from settings (quality.max_image_pixels); tools that decode
# images outside the service use the same default.
DEFAULT_MAX_PIXELS = QualitySettings().max_image_pixels
MIN_SIDE = 16


class ImageFormat(Enum):
    PNG = "png"
    JPEG = "jpeg"
    BMP = "bmp"


@dataclass(frozen=True)
class ImageHeader:
    format: ImageFormat
    width: int
    height: int


def _refuse(field: str, description: str) -> InvalidArgument:
    return InvalidArgument([FieldViolation(field, description)])


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from the first start-of-frame marker, or None if absent."""
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            position += 2
            continue
        (length,) = struct.unpack(">H", data[position + 2 : position + 4])
        # SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC) carry the frame size.
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if position + 9 > len(data):
                return None
            height, width = struct.unpack(">HH", data[position + 5 : position + 9])
            return width, height
        position += 2 + length
    return None


def read_header(data: bytes, field: str) -> ImageHeader:
    """Format and size from the encoded bytes; InvalidArgument naming ``field`` if the
    bytes are empty, not PNG/JPEG/BMP, or the header is broken."""
    if not data:
        raise _refuse(field, "is empty; send an encoded PNG, JPEG or BMP image")
    size: tuple[int, int] | None = None
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        image_format = ImageFormat.PNG
        if len(data) >= 24 and data[12:16] == b"IHDR":
            size = struct.unpack(">II", data[16:24])
    elif data.startswith(b"\xff\xd8"):
        image_format = ImageFormat.JPEG
        size = _jpeg_size(data)
    elif data.startswith(b"BM"):
        image_format = ImageFormat.BMP
        if len(data) >= 26:
            width, height = struct.unpack("<ii", data[18:26])
            size = (abs(width), abs(height))
    else:
        raise _refuse(field, "unsupported encoding; only PNG, JPEG and BMP are accepted")
    if size is None:
        raise _refuse(field, f"corrupt {image_format.value.upper()} header")
    width, height = size
    return ImageHeader(image_format, width, height)


def decode_gray(data: bytes, field: str, *, max_pixels: int) -> NDArray[Any]:
    """8-bit grayscale pixels of an encoded image, after checking its header."""
    header = read_header(data, field)
    if header.width < MIN_SIDE or header.height < MIN_SIDE:
        raise _refuse(
            field, f"image is {header.width}x{header.height}; each side needs {MIN_SIDE}+ px"
        )
    if header.width * header.height > max_pixels:
        raise _refuse(
            field,
            f"image is {header.width}x{header.height} = {header.width * header.height} "
            f"pixels; the limit is {max_pixels}",
        )
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_GRAYSCALE)
    if image is None or image.shape != (header.height, header.width):
        raise _refuse(field, f"corrupt {header.format.value.upper()} data; cannot decode")
    return image
