"""Image references in JSON edit requests: ``data:image/...;base64,...`` or an http(s) URL."""

from __future__ import annotations

import base64
import binascii
import re

from imagegate.errors import InvalidRequest
from imagegate.media.fetch import SafeFetcher

# The media type is not trusted (the format is sniffed from the bytes later); it only has to
# say image. Parameters such as ";name=cat.png" may precede ";base64".
_DATA_HEADER = re.compile(r"data:image/[a-z0-9.+-]+(?:;[^;,]*)*;base64", re.IGNORECASE)
_WHITESPACE = re.compile(rb"\s+")


def parse_data_url(url: str, *, param: str) -> bytes:
    """The bytes of a base64 ``data:image/...`` URL."""
    header, comma, payload = url.partition(",")
    if not comma or not _DATA_HEADER.fullmatch(header.strip()):
        raise InvalidRequest(
            f"{param} must be a data URL of the form data:image/<type>;base64,<data>",
            param=param,
            code="invalid_image_url",
        )
    try:
        # Some clients wrap long base64 lines; the standard alphabet has no whitespace to lose.
        raw = _WHITESPACE.sub(b"", payload.encode("ascii"))
        data = base64.b64decode(raw, validate=True)
    except (UnicodeEncodeError, binascii.Error) as exc:
        raise InvalidRequest(
            f"{param} contains invalid base64 data", param=param, code="invalid_base64"
        ) from exc
    if not data:
        raise InvalidRequest(f"{param} contains no image data", param=param, code="invalid_image")
    return data


async def read_image_ref(url: str, fetcher: SafeFetcher, *, param: str) -> bytes:
    """The bytes an image reference points at, fetched under the SSRF rules when remote."""
    url = url.strip()
    scheme = url.partition(":")[0].lower()
    if scheme == "data":
        return parse_data_url(url, param=param)
    if scheme in ("http", "https"):
        return await fetcher.fetch(url, param=param)
    raise InvalidRequest(
        f"{param} must be an http(s) URL or a data:image/...;base64 URL",
        param=param,
        code="invalid_image_url",
    )
