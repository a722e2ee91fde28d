"""What an upstream's image really is: its format, its size, and whether it is whole.

An upstream's bytes are checked before any money moves. Reading the header gives the format
and the dimensions without decoding a pixel; the end of the data shows whether the file is
whole, so HTML (or any truncation) after a valid header is caught too. Cheap enough for every
image, also multi-megabyte base64 that is otherwise passed through undecoded.
"""

from __future__ import annotations

from dataclasses import dataclass

from imagegate.domain import ImageBlob, ImageFormat, sniff_format
from imagegate.media.transcode import HEADER_BYTES, image_dimensions

#: The last 12 bytes of every PNG: the IEND chunk (length 0, type, CRC).
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"
#: JPEG's end-of-image marker; some encoders append a few bytes after it.
_JPEG_END = b"\xff\xd9"
_TAIL_BYTES = 1024


@dataclass(frozen=True, slots=True)
class ImageInfo:
    format: ImageFormat
    width: int
    height: int

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"


def inspect_image(blob: ImageBlob) -> ImageInfo:
    """The image's real format and size; ``ValueError`` when it is not a whole PNG, JPEG or WebP.

    Sync: it decodes a little base64 and parses a header, so callers may run it in a worker.
    """
    head = blob.head(HEADER_BYTES)
    fmt = sniff_format(head)
    if fmt is None:
        raise ValueError("not a PNG, JPEG or WebP image")
    width, height = _png_dimensions(head) if fmt == "png" else image_dimensions(head)
    tail = blob.tail(_TAIL_BYTES)
    if fmt == "png" and not tail.endswith(_PNG_END):
        raise ValueError("the PNG data does not end with its IEND chunk (truncated or not an image)")
    if fmt == "jpeg" and _JPEG_END not in tail:
        raise ValueError("the JPEG data has no end-of-image marker (truncated or not an image)")
    return ImageInfo(fmt, width, height)


def _png_dimensions(head: bytes) -> tuple[int, int]:
    """Width and height from the IHDR chunk, which the PNG format fixes right after the signature.

    Every upstream image is inspected, most are PNG, and this is a fraction of Pillow's cost.
    """
    if len(head) < 24 or head[12:16] != b"IHDR":
        raise ValueError("the PNG data does not start with its IHDR chunk")
    width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    if not (0 < width < 2**31 and 0 < height < 2**31):
        raise ValueError("the PNG header has impossible dimensions")
    return width, height
