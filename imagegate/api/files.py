"""/files/{day}/{sha256}.{ext}: hosted images. No auth: the content hash is the unguessable name."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import FileResponse, Response

from imagegate.api.deps import gateway
from imagegate.errors import NotFound
from imagegate.storage.base import parse_key

router = APIRouter()

# The name is the content's hash, so the bytes behind a URL never change.
_CACHE_CONTROL = "public, max-age=31536000, immutable"


@router.get("/files/{day}/{name}")
async def get_file(day: str, name: str, request: Request) -> Response:
    # Only names the store itself hands out are looked up: no path can leave the store.
    image = parse_key(f"{day}/{name}")
    path = gateway(request).store.local_path(image) if image is not None else None
    if image is None or path is None:
        raise NotFound("No such file.", code="file_not_found")
    etag = f'"{image.digest}"'
    headers = {"ETag": etag, "Cache-Control": _CACHE_CONTROL}
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return FileResponse(path, media_type=image.content_type, headers=headers)
