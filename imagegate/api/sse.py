"""Server-sent events framing, and a keep-alive wrapper for slow producers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from imagegate import jsonsplice

KEEP_ALIVE = b": keep-alive\n\n"


def sse_event(event: str | None, data: Any) -> list[bytes | memoryview]:
    """One SSE frame, as parts. ``data`` is JSON-encoded unless it is already bytes (``[DONE]``)."""
    head = (f"event: {event}\n" if event else "").encode() + b"data: "
    if isinstance(data, bytes):
        return [head + data + b"\n\n"]
    # Left unjoined: an event can carry megabytes of base64 (see api/responses.py).
    return jsonsplice.dump_parts(data, prefix=head, suffix=b"\n\n")


Frame = list[bytes | memoryview] | bytes


async def with_keep_alive(frames: AsyncIterator[Frame], interval_s: float) -> AsyncIterator[Frame]:
    """Relay ``frames``, adding a comment line whenever nothing was sent for ``interval_s``.

    Image generation can take minutes; proxies and clients drop idle connections well before.
    The pending ``anext`` is never cancelled by a timeout, only by the consumer going away,
    which then also closes ``frames`` (and so the upstream call).
    """
    iterator = aiter(frames)
    pending: asyncio.Future[Frame] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(iterator))
            done, _ = await asyncio.wait({pending}, timeout=interval_s)
            if not done:
                yield KEEP_ALIVE
                continue
            finished, pending = pending, None
            # Read the outcome without raising it here: a raised StopAsyncIteration would carry
            # a traceback into this frame, a reference cycle that keeps the last multi-megabyte
            # frame alive until the cyclic garbage collector happens to run.
            error = finished.exception()
            if isinstance(error, StopAsyncIteration):
                return
            if error is not None:
                raise error
            yield finished.result()
            del finished
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()
