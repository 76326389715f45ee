"""Image files checked, and converted where needed, before llama.cpp decodes them.

llama.cpp decodes images with stb_image, which reads PNG, JPEG, GIF and BMP, and decodes
whatever size a file's header claims: a few hundred kilobytes of PNG can claim 20,000 x
20,000 pixels and take gigabytes. Pillow reads the header first (no pixels), so a file too
large is refused before anything is decoded, and formats stb_image lacks (WebP, TIFF, ...)
are converted to PNG here.
"""

from __future__ import annotations

import io

from power_core.errors import InvalidRequest

#: the most pixels an image may have (an 8K photo has 33 million)
MAX_PIXELS = 40_000_000
#: formats and pixel modes that llama.cpp's decoder reads as they are
_PASSED_FORMATS = frozenset({"PNG", "JPEG", "GIF", "BMP"})
_PASSED_MODES = frozenset({"RGB", "RGBA", "L", "LA", "P"})


def readable_image(data: bytes, index: int) -> bytes:
    """``data`` if llama.cpp can decode it as it is, else the same image as a PNG;
    :class:`InvalidRequest` for what is no image or too large."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:  # the header only
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise _too_large(index, f"{width} x {height}")
            if image.format in _PASSED_FORMATS and image.mode in _PASSED_MODES:
                return data
            converted = io.BytesIO()
            image.convert("RGBA" if "A" in image.getbands() else "RGB").save(converted, "PNG")
            return converted.getvalue()
    except Image.DecompressionBombError:  # Pillow's own limit, far above ours
        raise _too_large(index, "more than 178 million") from None
    except (UnidentifiedImageError, OSError, ValueError):
        raise InvalidRequest(
            f"image {index} could not be read: send a PNG, JPEG, WebP, GIF or BMP image",
            param="images",
        ) from None


def _too_large(index: int, pixels: str) -> InvalidRequest:
    return InvalidRequest(
        f"image {index} has {pixels} pixels; at most {MAX_PIXELS // 1_000_000} million are read",
        param="images",
    )
