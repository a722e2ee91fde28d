"""The image store in S3-compatible object storage (AWS S3, R2, MinIO…), through obstore.

obstore (Rust's `object_store` under a small Python API) was chosen over aioboto3/aiobotocore:
on a loopback S3 server it put and got 40 × 4 MB concurrently faster (1.2 s + 0.35 s against
1.46 s + 0.44 s) with well under half the memory (99 MB against 244 MB peak RSS), it streams
downloads in chunks, signs URLs itself, and it pins none of our other dependencies (aiobotocore
pins botocore and downgraded multidict under aiohttp).

Objects are ``PREFIX/day/sha256.ext`` with their Content-Type and long-lived Cache-Control, so a
public bucket or CDN (`public` URLs) and presigned links serve them right without the gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit

import obstore
from obstore.exceptions import BaseError as _ObjectStoreError
from obstore.store import S3Store as _ObjectStore

from imagegate.storage.base import (
    CACHE_CONTROL,
    DAY,
    ImageBody,
    ImageStore,
    StoredImage,
    StoreUnreachable,
    UrlPolicy,
    make_key,
    parse_key,
)

_CHUNK = 256 * 1024
# S3's DeleteObjects takes at most 1000 keys per call.
_DELETE_BATCH = 1000


class S3Store(ImageStore):
    """``s3://bucket/prefix``; credentials and region from the standard AWS_* variables."""

    def __init__(
        self,
        url: str,
        *,
        endpoint: str = "",
        urls: UrlPolicy | None = None,
        retention_days: int = 0,
    ) -> None:
        super().__init__(urls, retention_days)
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise ValueError(f"not an s3://bucket/prefix URL: {url!r}")
        self.bucket = parts.netloc
        self.prefix = parts.path.strip("/")
        options: dict[str, Any] = {}
        if endpoint:
            # MinIO, moto and most self-hosted stores only answer path-style requests.
            options.update(endpoint=endpoint, virtual_hosted_style_request=False)
            if endpoint.startswith("http://"):
                options["allow_http"] = True
        self._store = _ObjectStore(
            self.bucket,
            prefix=self.prefix or None,
            # obstore's defaults retry for up to 3 minutes; a client waiting on /files/ gives up sooner.
            retry_config={
                "max_retries": 3,
                "backoff": {
                    "init_backoff": dt.timedelta(milliseconds=100),
                    "max_backoff": dt.timedelta(seconds=2),
                    "base": 2,
                },
                "retry_timeout": dt.timedelta(seconds=20),
            },
            client_options={"connect_timeout": dt.timedelta(seconds=5), "timeout": dt.timedelta(seconds=120)},
            **options,
        )

    async def put(self, data: bytes, ext: str) -> StoredImage:
        digest = await asyncio.to_thread(_sha256, data)
        image = make_key(digest, ext)
        # Same key, same bytes: overwriting is harmless, and cheaper than asking first.
        # Bodies over obstore's chunk size go up as a multipart upload, part by part.
        with _unavailable():
            await obstore.put_async(
                self._store,
                image.key,
                data,
                attributes={"Content-Type": image.content_type, "Cache-Control": CACHE_CONTROL},
            )
        return image

    async def open(self, image: StoredImage) -> ImageBody | None:
        try:
            with _unavailable():
                result = await obstore.get_async(self._store, image.key)
        except FileNotFoundError:
            return None
        return ImageBody(size=result.meta["size"], chunks=_chunks(result.stream(min_chunk_size=_CHUNK)))

    async def get(self, image: StoredImage) -> bytes | None:
        try:
            with _unavailable():
                result = await obstore.get_async(self._store, image.key)
                return bytes(await result.bytes_async())
        except FileNotFoundError:
            return None

    async def exists(self, image: StoredImage) -> bool:
        try:
            with _unavailable():
                await obstore.head_async(self._store, image.key)
        except FileNotFoundError:
            return False
        return True

    async def presigned_url(self, image: StoredImage, expires_s: int) -> str:
        return await obstore.sign_async(self._store, "GET", image.key, dt.timedelta(seconds=expires_s))

    async def days(self) -> list[str]:
        listing = await obstore.list_with_delimiter_async(self._store, None)
        return [
            name
            for name in (p.rstrip("/").rsplit("/", 1)[-1] for p in listing["common_prefixes"])
            if DAY.match(name)
        ]

    async def delete_day(self, day: str, *, dry_run: bool = False) -> tuple[int, int]:
        if not DAY.match(day):
            raise ValueError(f"not a day: {day!r}")
        images = size = 0
        batch: list[str] = []
        async for chunk in obstore.list(self._store, prefix=day, chunk_size=_DELETE_BATCH):
            for meta in chunk:
                # Only names this store hands out: a stranger's object under the prefix stays.
                if parse_key(meta["path"]) is None:
                    continue
                images += 1
                size += meta["size"]
                batch.append(meta["path"])
            if len(batch) >= _DELETE_BATCH and not dry_run:
                await obstore.delete_async(self._store, batch)
                batch = []
        if batch and not dry_run:
            await obstore.delete_async(self._store, batch)
        return images, size

    async def check(self) -> None:
        # A listing needs the bucket and the credentials to work, and writes nothing.
        await obstore.list_with_delimiter_async(self._store, "readyz-")


@contextlib.contextmanager
def _unavailable() -> Iterator[None]:
    # obstore reports a missing object as FileNotFoundError, everything else as its own errors.
    try:
        yield
    except _ObjectStoreError as exc:
        raise StoreUnreachable(f"the S3 store did not answer: {type(exc).__name__}") from exc


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def _chunks(stream: AsyncIterator[Any]) -> AsyncIterator[bytes]:
    async for chunk in stream:
        yield bytes(chunk)
