"""The SSE parser: any chunking of the same bytes gives the same events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from imagegate.providers.sse import SseDecoder, SseEvent, iter_sse

STREAM = (
    b"\xef\xbb\xbf: keep-alive\r\n"
    b"event: image_generation.partial_image\r\n"
    b'data: {"a":\r\n'
    b"data:1}\r\n"
    b"\r\n"
    b"event: ignored-without-data\n"
    b"id: 7\n"
    b"\n"
    b"data: caf\xc3\xa9\r"
    b"\r"
    b": comment\n"
    b"event: image_generation.completed\n"
    b"data: last"
)
EXPECTED = [
    SseEvent(event="image_generation.partial_image", data='{"a":\n1}'),
    SseEvent(event=None, data="café"),
    SseEvent(event="image_generation.completed", data="last"),
]


def decode(chunks: list[bytes]) -> list[SseEvent]:
    decoder = SseDecoder()
    events = [event for chunk in chunks for event in decoder.feed(chunk)]
    return events + decoder.flush()


def test_one_chunk() -> None:
    assert decode([STREAM]) == EXPECTED


@pytest.mark.parametrize("split", range(1, len(STREAM)))
def test_every_split_point(split: int) -> None:
    assert decode([STREAM[:split], STREAM[split:]]) == EXPECTED


def test_byte_by_byte() -> None:
    assert decode([STREAM[i : i + 1] for i in range(len(STREAM))]) == EXPECTED


def test_crlf_split_between_chunks_is_one_line_ending() -> None:
    assert decode([b"data: x\r", b"\n", b"\r", b"\ndata: y\n\n"]) == [
        SseEvent(event=None, data="x"),
        SseEvent(event=None, data="y"),
    ]


@pytest.fixture
async def big_line_url() -> AsyncIterator[str]:
    payload = b"A" * (6 * 1024 * 1024)

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_type = "text/event-stream"
        await response.prepare(request)
        body = b"event: image_generation.completed\ndata: " + payload + b"\n\n: bye\n\ndata: [DONE]\n\n"
        for start in range(0, len(body), 100_003):  # odd chunk size: lines straddle chunks
            await response.write(body[start : start + 100_003])
            await asyncio.sleep(0)
        return response

    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/"
    await runner.cleanup()


async def test_multi_megabyte_data_line_over_http(big_line_url: str) -> None:
    async with aiohttp.ClientSession() as session, session.get(big_line_url) as response:
        events = [event async for event in iter_sse(response.content)]
    assert [event.event for event in events] == ["image_generation.completed", None]
    assert len(events[0].data) == 6 * 1024 * 1024 and set(events[0].data) == {"A"}
    assert events[1].data == "[DONE]"
