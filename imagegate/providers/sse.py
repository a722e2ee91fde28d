"""An incremental Server-Sent Events parser for upstream response bodies.

Image upstreams put a whole base64 image on one ``data:`` line, so a line can be many
megabytes long: ``StreamReader.readline()`` would stop at its buffer limit. The parser here
works on whatever chunks arrive and splits lines itself, scanning each byte only once.

Usage::

    async with session.post(url, json=body) as response:
        async for event in iter_sse(response.content):
            print(event.event, json.loads(event.data))
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp

# The three line endings the SSE grammar allows; "\r\n" first so it is taken as one ending.
_EOL = re.compile(rb"\r\n|\r|\n")


@dataclass(slots=True, frozen=True)
class SseEvent:
    """One dispatched event: its ``event:`` name (None when absent) and its joined data lines."""

    event: str | None
    data: str


class SseDecoder:
    """Turns byte chunks, split anywhere, into events.

    ``feed()`` returns the events the chunk completed; ``flush()`` returns a last event that
    the stream ended without a blank line after.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        # A chunk that ended in "\r" may be half of a "\r\n" whose "\n" opens the next chunk.
        self._skip_lf = False
        self._first_line = True
        self._event: str | None = None
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[SseEvent]:
        if self._skip_lf and chunk:
            self._skip_lf = False
            if chunk.startswith(b"\n"):
                chunk = chunk[1:]
        buffer = self._buffer
        # Only the new bytes can hold a line ending: the rest was scanned on earlier calls.
        position = len(buffer)
        buffer += chunk
        events: list[SseEvent] = []
        line_start = 0
        while (match := _EOL.search(buffer, position)) is not None:
            event = self._line(bytes(buffer[line_start : match.start()]))
            if event is not None:
                events.append(event)
            line_start = position = match.end()
            if match.group() == b"\r" and line_start == len(buffer):
                self._skip_lf = True
        if line_start:
            del buffer[:line_start]
        return events

    def flush(self) -> list[SseEvent]:
        """End of stream: a last event still counts, since some servers omit the closing blank line."""
        events: list[SseEvent] = []
        if self._buffer:
            self._line(bytes(self._buffer))
            self._buffer.clear()
        event = self._dispatch()
        if event is not None:
            events.append(event)
        return events

    def _line(self, raw: bytes) -> SseEvent | None:
        line = raw.decode("utf-8", errors="replace")
        if self._first_line:
            self._first_line = False
            line = line.removeprefix("\ufeff")
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment, e.g. a keep-alive
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        # "id" and "retry" steer browser reconnection, which a one-shot upstream call never does.
        return None

    def _dispatch(self) -> SseEvent | None:
        event, data = self._event, self._data
        self._event, self._data = None, []
        if not data:
            return None  # the SSE rule: an event without data lines is not dispatched
        return SseEvent(event=event, data="\n".join(data))


async def iter_sse(content: aiohttp.StreamReader) -> AsyncIterator[SseEvent]:
    """Yield events from a response body as soon as each one is complete."""
    decoder = SseDecoder()
    async for chunk in content.iter_any():
        for event in decoder.feed(chunk):
            yield event
    for event in decoder.flush():
        yield event
