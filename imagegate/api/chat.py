"""/v1/chat/completions for chat-image models: non-stream and stream (SPEC §4)."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator

import orjson
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from imagegate.api.chat_protocol import ChatCompletionBody, parse_chat_completion
from imagegate.api.deps import gateway, principal
from imagegate.api.images import note_image_request
from imagegate.api.responses import event_stream_response
from imagegate.api.sse import Frame, sse_event
from imagegate.domain import ImageRequest, ImageResult, Principal
from imagegate.errors import GatewayError, UpstreamFailed
from imagegate.observability import note, note_error
from imagegate.services.chat import ChatImageService, chunk_body, completion_body, completion_id, usage_wire

router = APIRouter()
logger = logging.getLogger("imagegate.chat")


async def chat_completions(request: Request) -> Response:
    who = await principal(request)
    gw = gateway(request)
    service = gw.chat
    body = parse_chat_completion(await request.body())
    note(model=body.model)
    image_request = await service.build_request(body, who)
    note_image_request(image_request)
    note(model=body.model, stream=body.stream)  # the log names the model the client called
    service.images.prepare(image_request, _inner(who))
    if body.stream:
        # A refusal for quota is a plain 429 when it can be known before the stream starts.
        await service.images.precheck(image_request, who)
        return event_stream_response(
            _stream(service, body, image_request, who), gw.settings.stream_keepalive_s
        )
    result = await _final(service, image_request, who)
    reply = await service.reply(image_request, result)
    return Response(
        orjson.dumps(completion_body(completion_id(), body.model, reply)), media_type="application/json"
    )


def _inner(who: Principal) -> Principal:
    return Principal(key_id=who.key_id, name=who.name, is_admin=who.is_admin)


async def _final(service: ChatImageService, image_request: ImageRequest, who: Principal) -> ImageResult:
    result: ImageResult | None = None
    async for event in service.events(image_request, who):
        result = event
    if result is None:
        raise UpstreamFailed("The image model returned no image.", code="upstream_bad_response")
    return result


async def _stream(
    service: ChatImageService, body: ChatCompletionBody, image_request: ImageRequest, who: Principal
) -> AsyncIterator[Frame]:
    cid, created = completion_id(), int(time.time())

    def chunk(delta: dict[str, object], finish: str | None = None) -> Frame:
        return sse_event(None, chunk_body(cid, body.model, created, delta, finish))

    # The role goes out at once, so the client sees the reply begin while the image is made.
    yield chunk({"role": "assistant", "content": ""})
    try:
        result = await _final(service, image_request, who)
        reply = await service.reply(image_request, result)
    except GatewayError as error:
        note_error(error)
        yield sse_event(None, error.to_body())
        return
    except Exception:
        logger.exception("chat stream failed")
        internal = GatewayError("The gateway hit an internal error while streaming.")
        note_error(internal)
        yield sse_event(None, internal.to_body())
        return
    yield chunk({"content": reply.content})
    yield chunk({}, "stop")
    if body.stream_options is not None and body.stream_options.include_usage:
        usage_chunk = chunk_body(cid, body.model, created, {}, None)
        usage_chunk["choices"] = []
        usage_chunk["usage"] = usage_wire(reply.usage)
        yield sse_event(None, usage_chunk)
    yield sse_event(None, b"[DONE]")


# A plain Starlette route, like the image endpoints (see api/images.py).
router.add_route("/v1/chat/completions", chat_completions, methods=["POST"])
