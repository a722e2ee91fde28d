"""Responses whose bodies are sent as parts: multi-megabyte images without whole-body copies.

A JSON answer or SSE frame carrying an image is a few small pieces around one large base64
value (a view into the upstream's body, see :mod:`imagegate.jsonsplice`). Joining them would
copy the megabytes once, and the server's chunked encoding would copy them again. Sending the
pieces in slices of at most ``PIECE`` bytes keeps every copy small and the memory a stream
holds to about one image.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from imagegate import jsonsplice
from imagegate.api.sse import Frame, with_keep_alive

PIECE = 256 * 1024


def pieces(parts: Iterable[bytes | memoryview]) -> Iterable[bytes]:
    """The parts as bytes objects of at most ``PIECE`` bytes (small ones pass unchanged)."""
    for part in parts:
        if len(part) <= PIECE:
            if part:
                yield bytes(part) if isinstance(part, memoryview) else part
            continue
        view = memoryview(part)
        for start in range(0, len(view), PIECE):
            yield bytes(view[start : start + PIECE])


async def flatten(frames: AsyncIterator[Frame]) -> AsyncIterator[bytes]:
    """Frames (each whole, so nothing is ever interleaved inside one) as sendable pieces."""
    async for frame in frames:
        if isinstance(frame, bytes):
            yield frame
        else:
            for piece in pieces(frame):
                yield piece
        del frame  # not kept while the next (multi-megabyte) frame is read


class JSONPartsResponse(Response):
    """``application/json`` from :func:`jsonsplice.dump_parts`, with a Content-Length."""

    media_type = "application/json"

    def __init__(self, content: object, status_code: int = 200) -> None:
        # Not Response.__init__: it renders a body and derives headers this class replaces anyway,
        # on every image answer.
        self.parts = jsonsplice.dump_parts(content)
        self.status_code = status_code
        self.background = None
        self.body = b""
        length = sum(len(part) for part in self.parts)
        self.raw_headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % length)]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        body = list(pieces(self.parts))
        for index, piece in enumerate(body):
            await send({"type": "http.response.body", "body": piece, "more_body": index < len(body) - 1})
        if not body:
            await send({"type": "http.response.body", "body": b"", "more_body": False})


def event_stream_response(frames: AsyncIterator[Frame], keepalive_s: float) -> StreamingResponse:
    """A ``text/event-stream`` of SSE frames, with keep-alives while the producer is quiet."""
    return StreamingResponse(
        flatten(with_keep_alive(frames, keepalive_s)),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
