"""``stream: true`` on /v1/images/*: OpenAI's image events over SSE (SPEC §5)."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.responses import StreamingResponse

from imagegate.api.responses import event_stream_response
from imagegate.api.sse import Frame, sse_event
from imagegate.domain import ImageRequest, ImageResult, PartialImage, Principal
from imagegate.errors import GatewayError
from imagegate.observability import note_error
from imagegate.services.images import ImageService

logger = logging.getLogger("imagegate.streaming")


async def stream_response(
    service: ImageService, request: ImageRequest, who: Principal, keepalive_s: float
) -> StreamingResponse:
    # Errors found before the first byte are ordinary HTTP errors, so check them now.
    service.prepare(request, who)
    await service.precheck(request, who)
    return event_stream_response(_frames(service, request, who), keepalive_s)


async def _frames(service: ImageService, request: ImageRequest, who: Principal) -> AsyncIterator[Frame]:
    prefix = "image_edit" if request.operation == "edit" else "image_generation"
    try:
        async for event in service.events(request, who):
            if isinstance(event, PartialImage):
                frame = sse_event(f"{prefix}.partial_image", _partial_payload(prefix, event, request))
                del event  # one multi-megabyte event held at a time
                yield frame
                del frame
            else:
                for payload in await _completed_payloads(service, prefix, event, request):
                    yield sse_event(f"{prefix}.completed", payload)
    except GatewayError as error:
        note_error(error)
        yield sse_event("error", {"type": "error", **error.to_body()})
    except Exception:
        logger.exception("stream failed")
        internal = GatewayError("The gateway hit an internal error while streaming.")
        note_error(internal)
        yield sse_event("error", {"type": "error", **internal.to_body()})


def _common(request: ImageRequest, size: str | None, fmt: str | None) -> dict[str, Any]:
    return {
        "created_at": int(time.time()),
        "size": size or request.size,
        "quality": request.quality if request.quality in ("low", "medium", "high") else "auto",
        "background": request.background if request.background in ("transparent", "opaque") else "auto",
        "output_format": fmt or request.output_format or "png",
    }


def _partial_payload(prefix: str, event: PartialImage, request: ImageRequest) -> dict[str, Any]:
    return {
        "type": f"{prefix}.partial_image",
        "b64_json": event.image.b64_payload(),
        "partial_image_index": event.index,
        **_common(request, event.size, event.image.format),
    }


async def _completed_payloads(
    service: ImageService, prefix: str, result: ImageResult, request: ImageRequest
) -> list[dict[str, Any]]:
    # Completed events always carry the image; a hosted URL comes beside it.
    body = await service.render_response(request, result, always_b64=True)
    payloads = []
    for item in body["data"]:
        payload: dict[str, Any] = {
            "type": f"{prefix}.completed",
            **_common(request, body.get("size"), body.get("output_format")),
        }
        payload.update(item)
        if "usage" in body:
            payload["usage"] = body["usage"]
        payloads.append(payload)
    return payloads
