"""The keep-alive wrapper: relays frames, adds comments when idle, and leaves no garbage cycles."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator

from imagegate.api.sse import KEEP_ALIVE, Frame, sse_event, with_keep_alive


async def _slow_frames() -> AsyncIterator[Frame]:
    yield b"first"
    await asyncio.sleep(0.25)
    yield b"second"


async def test_keep_alive_comments_fill_the_gaps() -> None:
    out = [frame async for frame in with_keep_alive(_slow_frames(), interval_s=0.05)]

    assert out[0] == b"first" and out[-1] == b"second"
    assert out.count(KEEP_ALIVE) >= 2


async def test_a_finished_stream_leaves_no_reference_cycles() -> None:
    # A cycle here would keep the last (multi-megabyte) frame alive until the cyclic collector
    # ran, which under load meant hundreds of megabytes.
    async def frames() -> AsyncIterator[Frame]:
        yield sse_event("image_generation.completed", {"b64_json": "QUJD" * 50_000})

    gc.collect()
    gc.disable()
    try:
        out = [frame async for frame in with_keep_alive(frames(), interval_s=5)]
        del out
        unreachable = gc.collect()
    finally:
        gc.enable()
    assert unreachable == 0
