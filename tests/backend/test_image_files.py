"""Images decoded with Pillow before llama.cpp sees them: the formats taken, upright,
8-bit RGB (16-bit scaled, not clipped); anything else a 400 that names the formats,
never an exception of Pillow's own, and never a program started for a file (EPS)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from power_backend_llamacpp.image_files import MAX_PIXELS, decoded_image
from power_core.errors import InvalidRequest


def encoded(image: Image.Image, kind: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, kind, **options)
    return out.getvalue()


@pytest.mark.parametrize("kind", ["PNG", "JPEG", "WEBP", "GIF", "BMP"])
def test_each_format_taken_decodes_to_rgb(kind: str) -> None:
    image = Image.new("RGB", (12, 8), (200, 30, 40))
    pixels = decoded_image(encoded(image, kind), 0)
    assert (pixels.width, pixels.height, len(pixels.rgb)) == (12, 8, 12 * 8 * 3)


def test_a_dark_16_bit_image_stays_dark_and_an_rgba_one_loses_only_its_alpha() -> None:
    ramp = np.tile(np.arange(0, 16384, 256, dtype=np.uint16), (4, 1))  # up to a quarter
    dark = Image.frombytes("I;16", (64, 4), ramp.astype("<u2").tobytes())
    pixels = decoded_image(encoded(dark, "PNG"), 0)
    values = np.frombuffer(pixels.rgb, dtype=np.uint8)
    assert values.max() <= 64 and values.mean() < 40  # clipped, it would be nearly white
    red = Image.new("RGBA", (2, 2), (255, 0, 0, 10))
    assert decoded_image(encoded(red, "PNG"), 0).rgb == bytes([255, 0, 0]) * 4


def test_a_photo_taken_sideways_is_turned_upright() -> None:
    photo = Image.new("RGB", (30, 10), (0, 90, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees to view
    pixels = decoded_image(encoded(photo, "JPEG", exif=exif), 0)
    assert (pixels.width, pixels.height) == (10, 30)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 40,  # a broken PNG (Pillow: SyntaxError)
        b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n",  # would run Ghostscript
        b"II*\x00" + b"\x00" * 20,  # TIFF: not a format taken
        b"RIFF\x00\x00\x00\x00WAVEfmt ",
    ],
)
def test_what_is_no_image_of_the_formats_taken_is_a_400(data: bytes) -> None:
    with pytest.raises(InvalidRequest, match="image 3 could not be read: send a PNG, JPEG"):
        decoded_image(data, 3)


def test_an_image_over_the_pixel_limit_is_refused_from_its_header() -> None:
    side = int(MAX_PIXELS**0.5) + 1
    header = encoded(Image.new("1", (side, side)), "PNG")  # one bit a pixel: small
    with pytest.raises(InvalidRequest, match=f"has {side} x {side} pixels; at most 40 million"):
        decoded_image(header, 0)
