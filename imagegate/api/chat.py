"""/v1/chat/completions for chat-image models: translate, run the pipeline, render (SPEC §4)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import orjson
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from imagegate.api.chat_protocol import (
    ChatCompletionBody,
    chunk_body,
    completion_body,
    completion_id,
    content_delta,
    parse_chat_completion,
    usage_wire,
)
from imagegate.api.deps import chat_translator, gateway, generation, principal, record_of
from imagegate.api.responses import event_stream_response
from imagegate.api.sse import Frame, sse_event
from imagegate.api.streaming import accepted, error_frame
from imagegate.domain import Generated, GenerationEvent
from imagegate.observability import RequestRecord
from imagegate.services.chat import chat_reply

router = APIRouter()


async def chat_completions(request: Request) -> Response:
    who = await principal(request)
    record = record_of(request)
    body, call = parse_chat_completion(await request.body())
    record.model, record.stream = call.model, call.stream  # the log names the model the client called
    image_request = chat_translator(request).image_request(call, who)
    events = generation(request).run(image_request, who, record, hosted=True)
    if call.stream:
        frames = _chunks(body, await accepted(events), record)
        return event_stream_response(frames, gateway(request).settings.stream_keepalive_s)
    generated = await _final(events)
    reply = chat_reply(generated)
    return Response(
        orjson.dumps(completion_body(completion_id(), body.model, reply)), media_type="application/json"
    )


async def _final(events: AsyncIterator[GenerationEvent]) -> Generated:
    final = None
    async for event in events:
        if isinstance(event, Generated):
            final = event
    assert final is not None  # the pipeline raises rather than end without one
    return final


async def _chunks(
    body: ChatCompletionBody, events: AsyncIterator[GenerationEvent], record: RequestRecord
) -> AsyncIterator[Frame]:
    cid, created = completion_id(), int(time.time())

    def chunk(delta: dict[str, object], finish: str | None = None) -> Frame:
        return sse_event(None, chunk_body(cid, body.model, created, delta, finish))

    # The role goes out at once, so the client sees the reply begin while the image is made.
    yield chunk({"role": "assistant", "content": ""})
    try:
        reply = chat_reply(await _final(events))
    except Exception as exc:
        yield error_frame(exc, record)
        return
    yield chunk(content_delta(reply))
    yield chunk({}, "stop")
    if body.stream_options is not None and body.stream_options.include_usage:
        usage_chunk = chunk_body(cid, body.model, created, {}, None)
        usage_chunk["choices"] = []
        usage_chunk["usage"] = usage_wire(reply.usage)
        yield sse_event(None, usage_chunk)
    yield sse_event(None, b"[DONE]")


# A plain endpoint, like the image endpoints (see api/images.py).
POST_ROUTES = {"/v1/chat/completions": chat_completions}
for _path, _endpoint in POST_ROUTES.items():
    router.add_route(_path, _endpoint, methods=["POST"])
