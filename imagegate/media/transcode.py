"""Re-encoding images into the format, compression and background a client asked for.

Sync on purpose: encoding is CPU work, so callers run these in a worker thread.
"""

from __future__ import annotations

import io

from PIL import Image

from imagegate.domain import ImageBlob, ImageFormat, sniff_format
from imagegate.media.work import run_sized_work

_PIL_FORMATS: dict[ImageFormat, str] = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
_DEFAULT_QUALITY = 95
_WHITE = (255, 255, 255)
# Modes PNG can store as they are; anything else (CMYK, YCbCr, float...) is converted first.
_PNG_MODES = frozenset({"1", "L", "LA", "P", "RGB", "RGBA", "I", "I;16"})


def convert_image(
    data: bytes,
    output_format: ImageFormat,
    *,
    compression: int | None = None,
    background: str | None = None,
) -> bytes:
    """``data`` re-encoded as ``output_format``; see :func:`encode_image` for the options.

    Raises ``ValueError`` when ``data`` is not a decodable image.
    """
    # Nothing to change: skip the decode/encode round trip (and its generation loss).
    if compression is None and background != "opaque" and sniff_format(data[:16]) == output_format:
        return data
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            return encode_image(img, output_format, compression=compression, background=background)
    except (OSError, SyntaxError, EOFError, Image.DecompressionBombError) as exc:
        raise ValueError("not a decodable image") from exc


def encode_image(
    image: Image.Image,
    output_format: ImageFormat,
    *,
    compression: int | None = None,
    background: str | None = None,
) -> bytes:
    """Encode ``image`` as ``output_format``.

    ``compression`` is OpenAI's ``output_compression`` (0-100). It applies to jpeg and webp
    only and is used as the encoder quality, so 100 is the best; ``None`` means 95.
    ``background="opaque"`` (or a jpeg target, which cannot hold alpha) flattens transparency
    onto white; ``"transparent"``, ``"auto"`` and ``None`` keep it.

    >>> encode_image(Image.new("RGBA", (8, 8)), "webp", compression=80)[:4]
    b'RIFF'
    """
    if output_format == "jpeg" or background == "opaque":
        image = _flatten(image)
    out = io.BytesIO()
    if output_format == "png":
        if image.mode not in _PNG_MODES:
            image = image.convert("RGBA" if image.has_transparency_data else "RGB")
        # Level 6 is zlib's sweet spot; optimize=True costs seconds on large images for a few %.
        image.save(out, "PNG", optimize=False, compress_level=6)
    else:
        quality = _DEFAULT_QUALITY if compression is None else max(0, min(100, compression))
        if output_format == "jpeg":
            image = image if image.mode in ("RGB", "L") else image.convert("RGB")
        else:
            image = image.convert("RGBA" if image.has_transparency_data else "RGB")
        image.save(out, _PIL_FORMATS[output_format], quality=quality)
    return out.getvalue()


def image_dimensions(data: bytes) -> tuple[int, int]:
    """(width, height) read from the header alone; no pixel is decoded.

    Raises ``ValueError`` when ``data`` is not a recognisable image.
    """
    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
    except (OSError, SyntaxError, EOFError) as exc:
        raise ValueError("not a recognisable image") from exc
    return width, height


def _flatten(image: Image.Image) -> Image.Image:
    """``image`` composited onto white, without an alpha channel."""
    if not image.has_transparency_data:
        return image
    rgba = image.convert("RGBA")
    flat = Image.new("RGB", rgba.size, _WHITE)
    flat.paste(rgba, mask=rgba.getchannel("A"))
    return flat


#: Bytes of an image needed to read its dimensions from the header, JPEG's included.
HEADER_BYTES = 64 * 1024


async def measured_size(blob: ImageBlob) -> str | None:
    """The image's real ``WxH`` from its header (decoding only that much base64), or None."""
    try:
        width, height = await run_sized_work(HEADER_BYTES, image_dimensions, blob.head(HEADER_BYTES))
    except ValueError:
        return None  # not an image: the gateway's format check reports it
    return f"{width}x{height}"
