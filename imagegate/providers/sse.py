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

from collections.abc import AsyncIterator

import aiohttp


class SseEvent:
    """One dispatched event: its ``event:`` name (None when absent) and its joined data lines.

    The data stays bytes (``raw``) as it arrived: a multi-megabyte JSON payload goes straight
    to the JSON parser without a decode and re-encode; ``data`` decodes it on demand.
    """

    __slots__ = ("event", "raw")

    def __init__(
        self, event: str | None = None, data: str | None = None, *, raw: bytes | None = None
    ) -> None:
        self.event = event
        self.raw = raw if raw is not None else (data or "").encode()

    @property
    def data(self) -> str:
        return self.raw.decode("utf-8", errors="replace")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SseEvent):
            return NotImplemented
        return (self.event, self.raw) == (other.event, other.raw)

    def __hash__(self) -> int:
        return hash((self.event, self.raw))

    def __repr__(self) -> str:
        return f"SseEvent(event={self.event!r}, data={self.data[:60]!r})"


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
        # Almost every server ends lines with "\n" alone; "\r" is looked for only once seen,
        # so a multi-megabyte line costs one memchr pass instead of a regex scan.
        self._saw_cr = False
        self._event: str | None = None
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> list[SseEvent]:
        if self._skip_lf and chunk:
            self._skip_lf = False
            if chunk.startswith(b"\n"):
                chunk = chunk[1:]
        if not self._saw_cr and b"\r" in chunk:
            self._saw_cr = True
        buffer = self._buffer
        # Only the new bytes can hold a line ending: the rest was scanned on earlier calls.
        position = len(buffer)
        buffer += chunk
        events: list[SseEvent] = []
        line_start = 0
        with memoryview(buffer) as view:
            while (found := self._line_end(buffer, position)) is not None:
                end, next_start = found
                event = self._line(view[line_start:end])
                if event is not None:
                    events.append(event)
                line_start = position = next_start
        if line_start:
            # A fresh buffer for the remainder: deleting the prefix would keep the capacity of
            # the multi-megabyte line just read alive for the rest of the stream.
            self._buffer = bytearray(memoryview(buffer)[line_start:])
        return events

    def _line_end(self, buffer: bytearray, position: int) -> tuple[int, int] | None:
        """(end of the line, start of the next) for the first line ending at or after ``position``."""
        newline = buffer.find(b"\n", position)
        if self._saw_cr:
            limit = newline if newline >= 0 else len(buffer)
            carriage = buffer.find(b"\r", position, limit)
            if carriage >= 0:
                if carriage + 1 < len(buffer):
                    return carriage, carriage + (2 if buffer[carriage + 1] == 0x0A else 1)
                # "\r" ends the chunk: the "\n" of a "\r\n" may open the next one.
                self._skip_lf = True
                return carriage, carriage + 1
        if newline >= 0:
            return newline, newline + 1
        return None

    def flush(self) -> list[SseEvent]:
        """End of stream: a last event still counts, since some servers omit the closing blank line."""
        events: list[SseEvent] = []
        if self._buffer:
            with memoryview(self._buffer) as view:
                self._line(view)
            self._buffer.clear()
        event = self._dispatch()
        if event is not None:
            events.append(event)
        return events

    def _line(self, line: memoryview) -> SseEvent | None:
        # Fields are matched on a view of the buffer: a multi-megabyte data line is copied once,
        # into the event, and never decoded to str just to be split.
        if self._first_line:
            self._first_line = False
            if bytes(line[:3]) == b"\xef\xbb\xbf":
                line = line[3:]
        if not line:
            return self._dispatch()
        if bytes(line[:1]) == b":":
            return None  # a comment, e.g. a keep-alive
        head = bytes(line[:16])
        colon = head.find(b":")
        name = head[:colon] if colon >= 0 else bytes(line)
        value_start = len(line) if colon < 0 else colon + 1
        if bytes(line[value_start : value_start + 1]) == b" ":
            value_start += 1
        if name == b"data":
            self._data.append(bytes(line[value_start:]))
        elif name == b"event":
            self._event = bytes(line[value_start:]).decode("utf-8", errors="replace")
        # "id" and "retry" steer browser reconnection, which a one-shot upstream call never does.
        return None

    def _dispatch(self) -> SseEvent | None:
        event, data = self._event, self._data
        self._event, self._data = None, []
        if not data:
            return None  # the SSE rule: an event without data lines is not dispatched
        return SseEvent(event=event, raw=data[0] if len(data) == 1 else b"\n".join(data))


async def iter_sse(content: aiohttp.StreamReader) -> AsyncIterator[SseEvent]:
    """Yield events from a response body as soon as each one is complete."""
    decoder = SseDecoder()
    async for chunk in content.iter_any():
        events = decoder.feed(chunk)
        del chunk
        # Popped, not iterated: a loop variable would keep each (multi-megabyte) event alive
        # while the next one is read.
        while events:
            yield events.pop(0)
    for event in decoder.flush():
        yield event
