"""SSE renderers of the pipeline's events: OpenAI's image events (SPEC §5), and the error event.

The stream starts only once the pipeline has accepted the request, so every refusal (bad input,
access, quota, unreadable images) is an ordinary HTTP error; anything after that ends the
stream with one ``error`` event.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from starlette.responses import StreamingResponse

from imagegate.api.protocol import completed_events, partial_image_event, sse_error
from imagegate.api.responses import event_stream_response
from imagegate.api.sse import Frame, sse_event
from imagegate.domain import Generated, GenerationEvent, ImageRequest, PartialImage
from imagegate.errors import GatewayError
from imagegate.observability import RequestRecord

logger = logging.getLogger("imagegate.streaming")


async def accepted(events: AsyncIterator[GenerationEvent]) -> AsyncIterator[GenerationEvent]:
    """``events`` once the pipeline accepted the request; a refusal is raised here, before any byte."""
    first = await anext(events)
    del first  # Accepted: nothing to send yet
    return events


async def image_event_stream(
    events: AsyncIterator[GenerationEvent], request: ImageRequest, record: RequestRecord, keepalive_s: float
) -> StreamingResponse:
    return event_stream_response(_image_frames(await accepted(events), request, record), keepalive_s)


async def _image_frames(
    events: AsyncIterator[GenerationEvent], request: ImageRequest, record: RequestRecord
) -> AsyncIterator[Frame]:
    try:
        async for event in events:
            if isinstance(event, PartialImage):
                frame = sse_event(*partial_image_event(request, event))
                del event  # one multi-megabyte event held at a time
                yield frame
                del frame
            elif isinstance(event, Generated):
                for name, payload in completed_events(request, event):
                    yield sse_event(name, payload)
                del event
    except Exception as exc:
        yield error_frame(exc, record)


def error_frame(exc: Exception, record: RequestRecord) -> Frame:
    """The one ``error`` event that ends a stream which had started (image and chat streams alike)."""
    if isinstance(exc, GatewayError):
        error = exc
    else:
        logger.exception("stream failed", exc_info=exc)
        error = GatewayError("The gateway hit an internal error while streaming.")
    record.failed(error.type, error.code, error.message)
    return sse_event("error", sse_error(error))
