"""Streaming through OpenAI Images upstreams: relay, fallbacks, failures, keep-alives, cancellation."""

from __future__ import annotations

import asyncio
import base64
import itertools
import threading
import time
from collections.abc import Iterator

import openai
import pytest
import requests
from aiohttp import web
from openai.types import ImageGenCompletedEvent, ImageGenPartialImageEvent

from tests.conftest import ADMIN_KEY, GatewayFactory, LiveGateway, open_image
from tests.fakes.loopback import LoopbackServer
from tests.fakes.openai_upstream import FakeOpenAIUpstream


def test_upstream_partials_are_relayed(upstream_gateway: LiveGateway, upstream: FakeOpenAIUpstream) -> None:
    events = list(
        upstream_gateway.client().images.generate(
            model="gpt-image-2",
            prompt="x",
            size="1024x1024",
            stream=True,
            partial_images=3,
            response_format="b64_json",
        )
    )

    assert upstream.requests[-1].body["stream"] is True and upstream.requests[-1].body["partial_images"] == 3
    assert [type(e) for e in events] == [ImageGenPartialImageEvent] * 3 + [ImageGenCompletedEvent]
    assert open_image(base64.b64decode(events[-1].b64_json)).size == (1024, 1024)


def test_upstream_that_cannot_stream_yields_one_completed_event(
    upstream_gateway: LiveGateway, upstream: FakeOpenAIUpstream
) -> None:
    upstream.stream_supported = False
    events = list(
        upstream_gateway.client().images.edit(
            model="gpt-image-2", image=open_png(), prompt="x", size="1024x1024", stream=True, partial_images=2
        )
    )

    assert [e.type for e in events] == ["image_edit.completed"]
    assert open_image(base64.b64decode(events[0].b64_json)).size == (1024, 1024)


def open_png() -> bytes:
    from tests.conftest import image_bytes

    return image_bytes((1024, 1024))


def test_mid_stream_upstream_failure_reaches_the_sdk_as_api_error(
    upstream_gateway: LiveGateway, upstream: FakeOpenAIUpstream
) -> None:
    upstream.stream_error = {"type": "server_error", "message": "the GPU caught fire", "code": "server_error"}
    stream = upstream_gateway.client().images.generate(
        model="gpt-image-2", prompt="x", size="1024x1024", stream=True, partial_images=1
    )

    received = []
    with pytest.raises(openai.APIError) as caught:
        for event in stream:
            received.append(event)
    assert [e.type for e in received] == ["image_generation.partial_image"]
    assert "GPU caught fire" in str(caught.value)


def test_slow_upstream_gets_keep_alives_through(
    make_gateway: GatewayFactory, upstream: FakeOpenAIUpstream
) -> None:
    """A 2 s upstream with keep-alives every 0.25 s: comments flow the whole time, then the image."""
    gateway = make_gateway(
        stream_keepalive_s=0.25,  # the setting, not the 15 s default: the test takes 2 s, not 30
        channels=[
            {
                "name": "slow",
                "provider": "openai",
                "base_url": upstream.base_url,
                "api_key": upstream.api_key,
                "models": ["gpt-image-2"],
                "timeout_s": 120,
            }
        ],
    )
    upstream.delay_s = 2.0
    started = time.monotonic()
    response = requests.post(
        f"{gateway.url}/v1/images/generations",
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        json={"model": "gpt-image-2", "prompt": "x", "size": "1024x1024", "stream": True},
        stream=True,
        timeout=1.5,  # per read: passes only if bytes keep arriving while the upstream works
    )
    keep_alive_times = []
    completed_at = None
    for line in response.iter_lines(decode_unicode=True):
        if line == ": keep-alive":
            keep_alive_times.append(time.monotonic() - started)
        if line.startswith("event: image_generation.completed"):
            completed_at = time.monotonic() - started
            break

    assert completed_at is not None and completed_at >= 1.9
    assert len(keep_alive_times) >= 4, keep_alive_times
    assert keep_alive_times[0] <= 1.0, keep_alive_times
    gaps = [later - earlier for earlier, later in itertools.pairwise(keep_alive_times)]
    assert max(gaps) <= 1.0, keep_alive_times  # every interval, not just a first burst


class HangingUpstream(LoopbackServer):
    """An upstream that never answers and notes when the gateway hangs up on it."""

    handler_cancellation = True

    def __init__(self) -> None:
        super().__init__()
        self.started = threading.Event()
        self.cancelled = threading.Event()

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/images/generations", self._hang)

    async def _hang(self, request: web.Request) -> web.StreamResponse:
        self.started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        return web.json_response({})


@pytest.fixture
def hanging_upstream() -> Iterator[HangingUpstream]:
    with HangingUpstream() as upstream:
        yield upstream


def test_client_disconnect_cancels_the_upstream_call(
    make_gateway: GatewayFactory, hanging_upstream: HangingUpstream
) -> None:
    gateway = make_gateway(
        stream_keepalive_s=0.2,
        channels=[
            {
                "name": "hanging",
                "provider": "openai",
                "base_url": f"http://127.0.0.1:{hanging_upstream.port}/v1",
                "api_key": "k",
                "models": ["gpt-image-2"],
            }
        ],
    )
    response = requests.post(
        f"{gateway.url}/v1/images/generations",
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        json={"model": "gpt-image-2", "prompt": "x", "size": "1024x1024", "stream": True},
        stream=True,
        timeout=10,
    )
    assert hanging_upstream.started.wait(5)
    first = next(response.iter_lines(decode_unicode=True))
    assert first == ": keep-alive"

    response.close()  # the client goes away mid-stream

    assert hanging_upstream.cancelled.wait(10), "the upstream call was not cancelled"
