"""Where hosted images live. The store is content-addressed: the name is the bytes' sha256.

Every store (the folder, `DiskStore`; S3-compatible object storage, `S3Store`) is an
`ImageStore`, opened from the settings by `imagegate.storage.factory.open_store`. Keys look like
``20261121/3f2a…9c.webp``: the UTC day the image was stored, then its hash. The day is what
retention goes by, so no database row is needed to know an image's age.

The API services use::

    store = open_store(settings)                   # once, in the app's lifespan; `aclose()` at the end
    stored = await store.put(data, "png")          # -> StoredImage; identical bytes stored once a day
    url = await store.url_for(stored, public_url)  # per IMAGEGATE_STORAGE_URLS: gateway/public/presigned
    data = await store.get(stored)                 # whole bytes, or None (e.g. an own image as edit input)
    body = await store.open(stored)                # streamed: body.size, `async for chunk in body.chunks`
                                                   # (body.path is set when a local file can be sent as is)
    image = parse_key("20261121/….webp")           # a key from a URL -> StoredImage, or None
    # reads raise StoreUnreachable when the store cannot answer (a missing image is None/False)
    store.is_expired(image)                        # past IMAGEGATE_IMAGE_RETENTION_DAYS (serve 410)

The pipeline's delivery step stores and asks `url_for`; an own image given back as an edit input
is read with `get`.

Retention (`imagegate.storage.retention`) uses `days()` and `delete_day()`.
"""

from __future__ import annotations

import datetime as dt
import re
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

# `/files/{day}/{sha256}.{ext}`: the only names a store ever hands out or serves.
STORED_NAME = re.compile(r"^(?P<day>\d{8})/(?P<digest>[0-9a-f]{64})\.(?P<ext>png|jpeg|webp)$")
DAY = re.compile(r"^\d{8}$")

CONTENT_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}

# The name is the content's hash, so the bytes behind a key never change.
CACHE_CONTROL = "public, max-age=31536000, immutable"

UrlMode = Literal["gateway", "public", "presigned"]


class StoreUnreachable(Exception):
    """The store could not be reached or refused the call (not: the image is missing)."""


@dataclass(frozen=True, slots=True)
class StoredImage:
    key: str  # "20261121/3f2a…9c.webp"
    digest: str
    ext: str

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.ext]

    @property
    def day(self) -> str:
        return self.key[:8]


@dataclass(frozen=True, slots=True)
class ImageBody:
    """An open stored image: its size and its bytes as chunks (read once)."""

    size: int
    chunks: AsyncIterator[bytes]
    #: A local file holding the bytes, for servers that can send it without reading it.
    path: Path | None = None


@dataclass(frozen=True, slots=True)
class UrlPolicy:
    """How a stored image's URL is made (IMAGEGATE_STORAGE_URLS and friends)."""

    mode: UrlMode = "gateway"
    public_url: str = ""  # the base for `public` mode: a CDN or a public bucket
    presign_s: int = 3600


def parse_key(key: str) -> StoredImage | None:
    """The stored image a key names, or None for anything that is not a store name."""
    match = STORED_NAME.match(key)
    if not match:
        return None
    return StoredImage(key=key, digest=match["digest"], ext=match["ext"])


def make_key(digest: str, ext: str, now: dt.datetime | None = None) -> StoredImage:
    day = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%d")
    return StoredImage(key=f"{day}/{digest}.{ext}", digest=digest, ext=ext)


def retention_cutoff(retention_days: int, now: dt.datetime | None = None) -> str | None:
    """The first day still kept ("YYYYMMDD"); images of earlier days are expired. None: keep all.

    Days are UTC. An image stored on day D lives at least `retention_days` full days and less
    than one day more.
    """
    if retention_days <= 0:
        return None
    today = (now or dt.datetime.now(dt.UTC)).date()
    return (today - dt.timedelta(days=retention_days)).strftime("%Y%m%d")


class ImageStore(ABC):
    """A content-addressed image store. Subclasses implement the byte-level methods."""

    def __init__(self, urls: UrlPolicy | None = None, retention_days: int = 0) -> None:
        self.urls = urls or UrlPolicy()
        self.retention_days = retention_days

    @abstractmethod
    async def put(self, data: bytes, ext: str) -> StoredImage:
        """Store ``data`` (identical bytes are stored once per day) and return its key."""

    @abstractmethod
    async def open(self, image: StoredImage) -> ImageBody | None:
        """The stored bytes as a stream, or None when the image is not stored (or gone)."""

    async def get(self, image: StoredImage) -> bytes | None:
        """The whole stored bytes, or None when the image is not stored (or gone)."""
        body = await self.open(image)
        if body is None:
            return None
        return b"".join([chunk async for chunk in body.chunks])

    @abstractmethod
    async def exists(self, image: StoredImage) -> bool:
        """Whether the image is stored."""

    @abstractmethod
    async def days(self) -> list[str]:
        """The days ("YYYYMMDD") that hold images, in any order."""

    @abstractmethod
    async def delete_day(self, day: str, *, dry_run: bool = False) -> tuple[int, int]:
        """Delete every image of ``day``; return (images, bytes) deleted (or that would be)."""

    @abstractmethod
    async def check(self) -> None:
        """Raise when the store cannot be written (readiness probe)."""

    async def aclose(self) -> None:
        """Release connections (nothing to do for most stores)."""
        return None

    def is_expired(self, image: StoredImage, now: dt.datetime | None = None) -> bool:
        """Past retention: its URL answers 410 even before the sweeper has deleted it."""
        cutoff = retention_cutoff(self.retention_days, now)
        return cutoff is not None and image.day < cutoff

    async def url_for(self, image: StoredImage, public_base: str) -> str:
        """The URL a client gets for an image; ``public_base`` is the gateway's public URL."""
        if self.urls.mode == "public":
            return f"{self.urls.public_url.rstrip('/')}/{image.key}"
        if self.urls.mode == "presigned":
            return await self.presigned_url(image, self.urls.presign_s)
        return f"{public_base.rstrip('/')}/files/{image.key}"

    async def presigned_url(self, image: StoredImage, expires_s: int) -> str:
        """An expiring direct link; only object stores can make one."""
        raise NotImplementedError(f"{type(self).__name__} cannot presign URLs")

    async def free_bytes(self) -> int | None:
        """Space left for new images, or None where the store has no such limit (readiness)."""
        return None
