"""Validation of client-supplied images: edit inputs and masks (SPEC §2).

Sync on purpose: decoding is CPU work, so callers run these in a worker thread.
"""

from __future__ import annotations

import io

from PIL import Image

from imagegate.domain import ImageFormat, InputImage, sniff_format
from imagegate.errors import InvalidRequest, PayloadTooLarge

_PIL_FORMATS: dict[ImageFormat, str] = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}

# Pillow raises these (or reports a truncated/corrupt file) in several shapes depending on
# the plugin and on where in the stream the damage is.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError)


def probe_input_image(data: bytes, *, param: str, max_bytes: int, max_pixels: int) -> tuple[int, int]:
    """(width, height) of a client image from its header alone, within the per-image limits.

    Cheap (no pixel is decoded), so a request's images can all be measured against its pixel
    budget before any of them is decoded.
    """
    if len(data) > max_bytes:
        raise PayloadTooLarge(
            f"{param} is larger than the {_megabytes(max_bytes)} MB limit per image", param=param
        )
    fmt = sniff_format(data[:16])
    if fmt is None:
        raise _invalid_image(param, "is not a supported image; PNG, JPEG or WebP are accepted")
    try:
        with Image.open(io.BytesIO(data), formats=[_PIL_FORMATS[fmt]]) as img:
            width, height = img.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _too_many_pixels(param, None, None, max_pixels) from exc
    except _DECODE_ERRORS as exc:
        raise _invalid_image(param, f"could not be decoded as {fmt.upper()} (truncated or corrupt)") from exc
    if width * height > max_pixels:
        raise _too_many_pixels(param, width, height, max_pixels)
    return width, height


def load_input_image(data: bytes, *, param: str, max_bytes: int, max_pixels: int) -> InputImage:
    """Check that ``data`` is a whole PNG, JPEG or WebP image within the limits, and describe it.

    The format comes from the bytes alone: the SDK sends every file as
    ``application/octet-stream`` and file names are the client's to invent.
    """
    if len(data) > max_bytes:
        raise PayloadTooLarge(
            f"{param} is larger than the {_megabytes(max_bytes)} MB limit per image", param=param
        )
    fmt = sniff_format(data[:16])
    if fmt is None:
        raise _invalid_image(param, "is not a supported image; PNG, JPEG or WebP are accepted")
    try:
        # `formats=` stops Pillow from second-guessing the sniffed type with another plugin.
        with Image.open(io.BytesIO(data), formats=[_PIL_FORMATS[fmt]]) as img:
            width, height = img.size
            # Checked from the header, before a single pixel is decoded: a few KB of PNG can
            # claim gigabytes of pixels.
            if width * height > max_pixels:
                raise _too_many_pixels(param, width, height, max_pixels)
            img.load()
            has_alpha = img.has_transparency_data
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _too_many_pixels(param, None, None, max_pixels) from exc
    except _DECODE_ERRORS as exc:
        raise _invalid_image(param, f"could not be decoded as {fmt.upper()} (truncated or corrupt)") from exc
    return InputImage(data=data, format=fmt, width=width, height=height, has_alpha=has_alpha)


def validate_mask(mask: InputImage, first: InputImage) -> None:
    """Apply OpenAI's mask rules: a PNG with an alpha channel, the size of the first image."""
    if mask.format != "png":
        raise InvalidRequest(f"mask must be a PNG image, got {mask.format.upper()}", param="mask")
    if not mask.has_alpha:
        raise InvalidRequest(
            "mask must have an alpha channel (transparent areas mark the edit)", param="mask"
        )
    if (mask.width, mask.height) != (first.width, first.height):
        raise InvalidRequest(
            f"mask must have the same dimensions as the first image "
            f"({first.width}x{first.height}), got {mask.width}x{mask.height}",
            param="mask",
        )


def _invalid_image(param: str, why: str) -> InvalidRequest:
    return InvalidRequest(f"{param} {why}", param=param, code="invalid_image")


def _too_many_pixels(param: str, width: int | None, height: int | None, limit: int) -> InvalidRequest:
    size = f" ({width}x{height})" if width is not None and height is not None else ""
    return InvalidRequest(
        f"{param} has too many pixels{size}; the limit is {limit} pixels",
        param=param,
        code="image_too_large",
    )


def _megabytes(n: int) -> str:
    return f"{n / (1024 * 1024):g}"
