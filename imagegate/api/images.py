"""/v1/images/generations and /v1/images/edits: parse, run the pipeline, render JSON or SSE."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from imagegate.api.deps import gateway, generation, principal, record_of
from imagegate.api.multipart import read_multipart
from imagegate.api.protocol import images_response, parse_generation, parse_json_edit, parse_multipart_edit
from imagegate.api.responses import JSONPartsResponse
from imagegate.api.streaming import image_event_stream
from imagegate.api.tasks import submit, wants_task
from imagegate.domain import ImageRequest, Principal, ResponseFormat
from imagegate.errors import InvalidRequest

router = APIRouter()


async def create_image(request: Request) -> Response:
    who = await principal(request)
    image_request = parse_generation(await request.body(), default_response_format(request, who))
    return await _respond(request, image_request, who)


async def edit_image(request: Request) -> Response:
    who = await principal(request)
    default_format = default_response_format(request, who)
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        fields, images, mask = await read_multipart(request)
        image_request = parse_multipart_edit(fields, images, mask, default_format)
    elif content_type.startswith("application/json"):
        image_request = parse_json_edit(await request.body(), default_format)
    else:
        raise InvalidRequest(
            "Send edits as multipart/form-data (files in 'image', 'image[]' or 'image[N]') "
            "or as application/json with an 'images' array.",
            code="invalid_content_type",
        )
    return await _respond(request, image_request, who)


def default_response_format(request: Request, who: Principal) -> ResponseFormat:
    """For a request that does not say: the key's default, else its group's, else the config's."""
    return who.response_format or gateway(request).settings.response_format


async def _respond(request: Request, image_request: ImageRequest, who: Principal) -> Response:
    if wants_task(request):  # the /async paths and `Prefer: respond-async` (SPEC §10)
        return await submit(request, image_request, who)
    pipeline, record = generation(request), record_of(request)
    if image_request.stream:
        return await image_event_stream(
            pipeline.run(image_request, who, record),
            image_request,
            record,
            gateway(request).settings.stream_keepalive_s,
        )
    return JSONPartsResponse(images_response(await pipeline.generate(image_request, who, record)))


#: Plain endpoints: they parse their own bodies, so they are dispatched without FastAPI's
#: per-request machinery (`imagegate.api.hot_routes`); the router keeps them for the rest.
POST_ROUTES = {
    "/v1/images/generations": create_image,
    "/v1/images/edits": edit_image,
    # Async tasks: the same bodies, answered by `api.tasks.submit`.
    "/v1/images/generations/async": create_image,
    "/v1/images/edits/async": edit_image,
}
for _path, _endpoint in POST_ROUTES.items():
    router.add_route(_path, _endpoint, methods=["POST"])
