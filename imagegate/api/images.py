"""/v1/images/generations and /v1/images/edits: parse, hand to the image service, render."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from imagegate.api.deps import gateway, principal
from imagegate.api.multipart import read_multipart
from imagegate.api.protocol import parse_generation, parse_json_edit, parse_multipart_edit
from imagegate.api.responses import JSONPartsResponse
from imagegate.api.streaming import stream_response
from imagegate.domain import ImageRequest, Principal
from imagegate.errors import InvalidRequest
from imagegate.observability import note

router = APIRouter()


async def create_image(request: Request) -> Response:
    who = await principal(request)
    gw = gateway(request)
    image_request = parse_generation(await request.body(), gw.settings.response_format)
    note_image_request(image_request)
    return await _respond(request, image_request, who)


async def edit_image(request: Request) -> Response:
    who = await principal(request)
    gw = gateway(request)
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        fields, images, mask = await read_multipart(request)
        image_request, sources, mask_source = parse_multipart_edit(
            fields, images, mask, gw.settings.response_format
        )
    elif content_type.startswith("application/json"):
        image_request, sources, mask_source = parse_json_edit(
            await request.body(), gw.settings.response_format
        )
    else:
        raise InvalidRequest(
            "Send edits as multipart/form-data (files in 'image', 'image[]' or 'image[N]') "
            "or as application/json with an 'images' array.",
            code="invalid_content_type",
        )
    note_image_request(image_request)
    # Cheap checks first: a wrong model or size should not cost fetching 16 remote images.
    gw.images.prepare(image_request, who)
    image_request.images, image_request.mask = await gw.inputs.load_edit_inputs(sources, mask_source)
    return await _respond(request, image_request, who)


def note_image_request(image_request: ImageRequest) -> None:
    """What the request log keeps of an image request."""
    note(
        model=image_request.model,
        stream=image_request.stream,
        n=image_request.n,
        size=image_request.size,
        quality=image_request.quality,
        user=image_request.user,
    )


async def _respond(request: Request, image_request: ImageRequest, who: Principal) -> Response:
    gw = gateway(request)
    if image_request.stream:
        return await stream_response(gw.images, image_request, who, gw.settings.stream_keepalive_s)
    body = await gw.images.create(image_request, who)
    return JSONPartsResponse(body)


# Plain Starlette routes: these endpoints parse their own bodies, so FastAPI's per-request
# dependency resolution would be pure overhead on the hottest paths.
router.add_route("/v1/images/generations", create_image, methods=["POST"])
router.add_route("/v1/images/edits", edit_image, methods=["POST"])
