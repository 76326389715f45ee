"""Image files decoded for llama.cpp's projector: with Pillow, not with llama.cpp's own
loader.

llama.cpp's helper decodes with stb_image, which decodes whatever size a file's header
claims (a few hundred kilobytes of PNG can claim 20,000 x 20,000 pixels and take
gigabytes), reads fewer formats and variants (no WebP, no RLE BMP), ignores a photo's EXIF
orientation, and hands bytes it cannot decode to ffprobe as a video. Here Pillow opens only
the formats listed, reads the header first so an image too large is refused before any
pixel is decoded, turns the image upright, and gives 8-bit RGB pixels, which go to
llama.cpp as they are.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import TYPE_CHECKING

from power_core.errors import InvalidRequest

if TYPE_CHECKING:
    from PIL.Image import Image

#: the most pixels an image may have (an 8K photo has 33 million)
MAX_PIXELS = 40_000_000
#: what Pillow may open: no format that would start another program (EPS runs Ghostscript)
FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP")
#: modes of more than 8 bits a channel, scaled down rather than clipped
_WIDE_MODES = frozenset({"I;16", "I;16B", "I;16L", "I", "F"})


@dataclass(frozen=True)
class Pixels:
    """An image decoded: 8-bit RGB, row by row."""

    width: int
    height: int
    rgb: bytes


def decoded_image(data: bytes, index: int) -> Pixels:
    """``data`` decoded to RGB pixels; :class:`InvalidRequest` for what is no image of the
    formats taken, or one too large."""
    from PIL import Image, ImageOps

    try:
        with Image.open(io.BytesIO(data), formats=FORMATS) as image:  # the header only
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise _too_large(index, f"{width} x {height}")
            upright = ImageOps.exif_transpose(image)
            if upright.mode in _WIDE_MODES:
                upright = _eight_bits(upright)
            rgb = upright.convert("RGB")
            return Pixels(rgb.width, rgb.height, rgb.tobytes())
    except InvalidRequest:
        raise
    except Image.DecompressionBombError:  # Pillow's own limit, far above ours
        raise _too_large(index, "more than 178 million") from None
    except Exception:  # Pillow raises many kinds for a broken file, each the client's
        raise InvalidRequest(
            f"image {index} could not be read: send a PNG, JPEG, WebP, GIF or BMP image",
            param="images",
        ) from None


def _eight_bits(image: Image) -> Image:
    """A 16-bit or float grey image scaled to 8 bits (``convert`` would clip it): integers
    keep their scale (a dark 16-bit image stays dark), floats are stretched to their range."""
    import numpy as np
    from PIL import Image as PILImage

    values = np.asarray(image, dtype=np.float64)
    if image.mode == "F":
        low, high = float(values.min()), float(values.max())
    else:
        wide = image.mode.startswith("I;16") or float(values.max()) > 255
        low, high = 0.0, 65535.0 if wide else 255.0
    scaled = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
    return PILImage.fromarray(np.clip(scaled, 0, 255).astype(np.uint8), "L")


def _too_large(index: int, pixels: str) -> InvalidRequest:
    return InvalidRequest(
        f"image {index} has {pixels} pixels; at most {MAX_PIXELS // 1_000_000} million are read",
        param="images",
    )
