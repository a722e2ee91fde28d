"""What the bad-input tests share: requests in each endpoint's shape, and the one error-envelope check.

``assert_error`` asserts the status, the exact envelope (``{"error": {message, type, param, code}}``)
with a message a developer can act on, the ``param`` SPEC §2/§3/§6 ask for and the
``X-Request-Id`` header.
"""

from __future__ import annotations

import base64
import json
import struct
import zlib
from typing import Any

import requests

from tests.conftest import ADMIN_KEY, LiveGateway, image_bytes

MB = 1024 * 1024
ALLOWED_SIZES = ["1024x1024", "1536x1024", "1024x1536", "auto"]
_UNSET = object()


def in_digits(text: str, zero: str) -> str:
    """``text`` with its ASCII digits written in another script, e.g. ``zero="\uff10"`` (full width)."""
    return "".join(chr(ord(zero) + int(char)) if "0" <= char <= "9" else char for char in text)


# What a lenient parser (``\d``, ``$``) reads as 1024x1024; SPEC §3 wants ASCII digits, whole string.
FULL_WIDTH_SIZE = in_digits("1024x1024", "\uff10")
ARABIC_INDIC_SIZE = in_digits("1024x1024", "\u0660")
LOOKALIKE_SIZES = [FULL_WIDTH_SIZE, ARABIC_INDIC_SIZE, "1024x1024\n"]


def auth(key: str = ADMIN_KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def assert_serves(gateway: LiveGateway) -> None:
    resp = requests.post(
        f"{gateway.url}/v1/images/generations",
        json={"model": "demo", "prompt": "a red square", "size": "1024x640", "quality": "low"},
        headers=auth(),
        timeout=30,
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["data"][0]["url"].startswith(f"{gateway.url}/files/")


def assert_error(
    resp: requests.Response,
    status: int,
    *,
    param: object = _UNSET,
    code: object = _UNSET,
    type_: str = "invalid_request_error",
    contains: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The status, OpenAI's envelope and nothing else, the request id; returns ``error``."""
    assert resp.status_code == status, resp.text
    assert resp.headers.get("content-type", "").startswith("application/json"), resp.headers
    request_id = resp.headers.get("x-request-id", "")
    assert request_id.startswith("req_") and len(request_id) > 4, resp.headers
    body = json.loads(resp.content)
    assert list(body) == ["error"], body
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and len(error["message"]) >= 10, error
    assert not error["message"].endswith(".."), error  # no doubled full stop
    assert error["type"] == type_, error
    assert error["param"] is None or isinstance(error["param"], str), error
    assert error["code"] is None or isinstance(error["code"], str), error
    if param is not _UNSET:
        assert error["param"] == param, error
    if code is not _UNSET:
        assert error["code"] == code, error
    for fragment in contains:
        assert fragment.lower() in error["message"].lower(), error
    return error


def generate(gateway: LiveGateway, body: Any, *, key: str = ADMIN_KEY) -> requests.Response:
    return requests.post(f"{gateway.url}/v1/images/generations", json=body, headers=auth(key), timeout=30)


def gen_body(**fields: Any) -> dict[str, Any]:
    return {"model": "demo", "prompt": "a red square", "size": "1024x640", **fields}


def edit_multipart(
    gateway: LiveGateway, files: list[tuple[str, Any]], *, key: str = ADMIN_KEY, **fields: Any
) -> requests.Response:
    """A multipart edit; ``fields`` are text parts (model and prompt default to valid ones)."""
    text = {"model": "demo", "prompt": "make it blue", **fields}
    parts = [(name, (None, str(value))) for name, value in text.items() if value is not None]
    return requests.post(f"{gateway.url}/v1/images/edits", files=parts + files, headers=auth(key), timeout=30)


def edit_json(gateway: LiveGateway, body: Any, *, key: str = ADMIN_KEY) -> requests.Response:
    return requests.post(f"{gateway.url}/v1/images/edits", json=body, headers=auth(key), timeout=30)


def png(size: tuple[int, int] = (64, 64), mode: str = "RGB", color: tuple[int, ...] = (200, 30, 30)) -> bytes:
    return image_bytes(size, "PNG", color, mode)


def data_url(data: bytes, media_type: str = "image/png") -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width``x``height`` pixels: a decompression bomb's shape."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 1024, 9))
        + chunk(b"IEND", b"")
    )


def multipart(parts: list[tuple[str, bytes, str | None]], boundary: str = "xyz") -> bytes:
    out = b""
    for name, value, filename in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + value + b"\r\n"
    return out
