"""Saving what the gateway answered, as the users' own scripts do: the raw response, then every image.

Files are ``DIR/<name>.json`` (the raw response) and ``DIR/<name>-<i>.<ext>`` with ``i`` counting
from 1; ``name`` is the request id (``X-Request-Id``) or, for a task, the task id. An image given
as ``b64_json`` is decoded; one given as ``url`` is downloaded (without the API key: hosted URLs
need none, and a presigned store URL would refuse an Authorization header). The extension comes
from the bytes, not from what the response claims.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx

from imagegate.cli.client.connection import TIMEOUT
from imagegate.cli.common import CliError

_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_SIGNATURES = ((b"\x89PNG\r\n\x1a\n", "png"), (b"\xff\xd8\xff", "jpeg"), (b"GIF8", "gif"))


def image_extension(data: bytes, fallback: str | None = None) -> str:
    for signature, extension in _SIGNATURES:
        if data.startswith(signature):
            return extension
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return fallback or "bin"


def safe_name(name: str) -> str:
    """A request or task id fit to name files by (an id with a slash in it must not pick the directory)."""
    if not _SAFE_NAME.fullmatch(name) or ".." in name:
        raise CliError(f"the gateway sent an id that cannot name a file: {name!r}")
    return name


class Saver:
    """Writes responses and their images under one directory, downloading hosted images as needed."""

    def __init__(self, out_dir: Path, base_url: str) -> None:
        self.out_dir = out_dir
        self.base_url = base_url

    def save_raw(self, name: str, raw: str) -> Path:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / f"{safe_name(name)}.json"
        path.write_text(raw, encoding="utf-8")
        return path

    def save_response(self, name: str, raw: str, body: Mapping[str, Any]) -> list[Path]:
        """An ``ImagesResponse``: the raw text as ``name.json``, then each image of its ``data``."""
        paths = [self.save_raw(name, raw)]
        items = body.get("data")
        if not isinstance(items, list):
            raise CliError(f"the response saved as {paths[0]} has no image list")
        fallback = body.get("output_format")
        return paths + self.save_images(name, items, fallback if isinstance(fallback, str) else None)

    def save_images(
        self, name: str, items: Iterable[Mapping[str, Any]], fallback_format: str | None
    ) -> list[Path]:
        """Save each item with ``b64_json`` or ``url`` (OpenAI's image object) as ``name-<i>.<ext>``."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        paths = []
        for index, item in enumerate(items, start=1):
            data = self.image_bytes(item)
            path = self.out_dir / f"{safe_name(name)}-{index}.{image_extension(data, fallback_format)}"
            path.write_bytes(data)
            paths.append(path)
        return paths

    def image_bytes(self, item: Mapping[str, Any]) -> bytes:
        encoded = item.get("b64_json")
        if isinstance(encoded, str) and encoded:
            try:
                return base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise CliError("the gateway sent an image that is not valid base64") from exc
        url = item.get("url")
        if isinstance(url, str) and url:
            return self.download(url)
        raise CliError("the gateway sent an image with neither b64_json nor url")

    def download(self, url: str) -> bytes:
        if url.startswith("data:"):
            _, _, encoded = url.partition(",")
            return base64.b64decode(encoded)
        # A relative URL (a gateway behind a path) is resolved against the API root's origin.
        absolute = urljoin(self.base_url, url)
        try:
            response = httpx.get(absolute, timeout=TIMEOUT, follow_redirects=True)
        except httpx.TransportError as exc:
            raise CliError(f"cannot download {absolute}: {exc}") from exc
        if response.status_code != 200:
            raise CliError(f"cannot download {absolute}: HTTP {response.status_code}")
        return response.content
