"""/files/{day}/{sha256}.{ext}: hosted images, read from the store (any replica serves any image).

No auth: the content hash is the unguessable name. An image past retention answers 410 (its day
says so), one that was never stored or is already gone answers 404.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import FileResponse, Response, StreamingResponse

from imagegate.api.deps import gateway
from imagegate.errors import NotFound, StorageUnavailable
from imagegate.storage.base import CACHE_CONTROL, StoreUnreachable, parse_key

router = APIRouter()
T = TypeVar("T")


@router.get("/files/{day}/{name}")
async def get_file(day: str, name: str, request: Request) -> Response:
    # Only names the store itself hands out are looked up: no path can leave the store.
    image = parse_key(f"{day}/{name}")
    if image is None:
        raise NotFound("No such file.", code="file_not_found")
    store = gateway(request).store
    if store.is_expired(image):
        raise NotFound(
            "This image is past its retention period and has been deleted.", code="file_expired", status=410
        )
    etag = f'"{image.digest}"'
    headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL}
    if etag in request.headers.get("if-none-match", ""):
        if await _read(store.exists(image)):
            return Response(status_code=304, headers=headers)
        raise NotFound("No such file.", code="file_not_found")
    body = await _read(store.open(image))
    if body is None:
        raise NotFound("No such file.", code="file_not_found")
    if body.path is not None:
        # A file on disk: sent with sendfile; its chunk stream was never started, so nothing leaks.
        return FileResponse(body.path, media_type=image.content_type, headers=headers)
    headers["Content-Length"] = str(body.size)
    return StreamingResponse(body.chunks, media_type=image.content_type, headers=headers)


async def _read(call: Awaitable[T]) -> T:
    """A store read; a store that cannot answer is a 503 (the image may well exist)."""
    try:
        return await call
    except StoreUnreachable as exc:
        raise StorageUnavailable("The image store is unavailable; try again shortly.") from exc
