"""What every upstream provider does at the edge: scrub the channel's key out of any error, and
refuse impossible usage numbers (502 upstream_malformed) before any money moves.

Each case runs against openai, openai-chat-image and gemini, each through its real fake upstream,
streamed and not. The fakes echo the key in the message, param, code and nested parts of their
error bodies, as careless upstreams and proxies do.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from imagegate.domain import ImageRequest, ImageResult, ProviderEvent, Usage
from imagegate.errors import GatewayError, UpstreamMalformed, UpstreamRejected
from imagegate.http import HttpClients
from imagegate.providers.base import Provider
from imagegate.providers.gemini import GeminiProvider
from imagegate.providers.openai import OpenAIProvider
from imagegate.providers.openai_chat_image import OpenAIChatImageProvider
from imagegate.providers.upstream import Scrubber
from imagegate.settings import ChannelConfig
from tests.fakes.chat_image_upstream import FakeChatImageUpstream
from tests.fakes.gemini_upstream import FakeGeminiUpstream
from tests.fakes.openai_upstream import FakeOpenAIUpstream

Fake = FakeOpenAIUpstream | FakeChatImageUpstream | FakeGeminiUpstream
KINDS = ["openai", "openai-chat-image", "gemini"]


@dataclass
class Setup:
    kind: str
    provider: Provider
    upstream: Any
    model: str


@pytest.fixture(params=KINDS)
async def setup(request: pytest.FixtureRequest, http: HttpClients) -> AsyncIterator[Setup]:
    kind: str = request.param
    fake: Fake
    if kind == "openai":
        fake, cls, model = FakeOpenAIUpstream(), OpenAIProvider, "gpt-image-1"
    elif kind == "openai-chat-image":
        fake, cls, model = FakeChatImageUpstream(), OpenAIChatImageProvider, "gpt-image-2-chat"
    else:
        fake, cls, model = FakeGeminiUpstream(), GeminiProvider, "gemini-2.5-flash-image"
    async with fake:
        channel = ChannelConfig(
            name="edge", provider=kind, base_url=fake.base_url, api_key=fake.api_key, models=[model]
        )
        yield Setup(kind, cls(channel, http), fake, model)


def request_for(setup: Setup, *, stream: bool) -> ImageRequest:
    return ImageRequest(
        operation="generate",
        model=setup.model,
        prompt="a lighthouse",
        size="1024x1024",
        stream=stream,
        partial_images=1 if stream else 0,
    )


async def run(setup: Setup, *, stream: bool) -> list[ProviderEvent]:
    return [event async for event in setup.provider.run(request_for(setup, stream=stream), setup.model)]


def everything_shown(error: GatewayError) -> str:
    """Every string of the error a client, a stream event or a log line could carry."""
    return json.dumps([error.to_body(), str(error), repr(error.args), error.headers])


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("status", [400, 422, 500, 503])
async def test_an_error_that_quotes_the_key_reaches_nobody_with_it(
    setup: Setup, status: int, stream: bool
) -> None:
    setup.upstream.echo_key_in_errors(status)
    with pytest.raises(GatewayError) as caught:
        await run(setup, stream=stream)
    shown = everything_shown(caught.value)
    assert setup.upstream.api_key not in shown
    assert "***" in shown  # the upstream's words are passed on, masked
    if status in (400, 422) and setup.kind != "gemini":
        # OpenAI-style rejections pass param and code through: masked, not dropped.
        assert isinstance(caught.value, UpstreamRejected)
        assert caught.value.param is not None and "***" in caught.value.param
        assert caught.value.code is not None and "***" in caught.value.code


async def test_an_error_event_mid_stream_that_quotes_the_key_is_scrubbed(http: HttpClients) -> None:
    async with FakeOpenAIUpstream() as fake:
        channel = ChannelConfig(
            name="edge", provider="openai", base_url=fake.base_url, api_key=fake.api_key, models=["m"]
        )
        setup = Setup("openai", OpenAIProvider(channel, http), fake, "gpt-image-1")
        fake.echo_key_in_errors(400)
        fake.fail_status = None  # the HTTP answer is a 200 stream; the error comes as an event
        events: list[ProviderEvent] = []
        with pytest.raises(UpstreamRejected) as caught:
            async for event in setup.provider.run(request_for(setup, stream=True), "gpt-image-1"):
                events.append(event)
        assert len(events) == 1  # the partial image came first
        shown = everything_shown(caught.value)
        assert fake.api_key not in shown and "***" in shown
        assert caught.value.param is not None and "***" in caught.value.param


def test_the_scrubber_masks_every_string_nested_and_url_encoded() -> None:
    scrub = Scrubber(["sk-a/b+c"])
    value = {"sk-a/b+c": ["x sk-a/b+c", {"deep": ("sk-a%2Fb%2Bc",)}], "n": 3, "none": None}
    assert scrub(value) == {"***": ["x ***", {"deep": ["***"]}], "n": 3, "none": None}
    assert Scrubber([""])("nothing to hide") == "nothing to hide"


# -- usage ------------------------------------------------------------------------------------

BAD_OPENAI_USAGE: list[Any] = [
    {"input_tokens": 10, "output_tokens": -1000},
    {"input_tokens": 10**19, "output_tokens": 1},
    {"input_tokens": 1.5e20, "output_tokens": 1},
    {"input_tokens": 1, "output_tokens": 1, "input_tokens_details": [1, 2]},
    {"input_tokens": "12", "output_tokens": 1},
    {"input_tokens": True, "output_tokens": 1},
    {"input_tokens": 2.5, "output_tokens": 1},
    {"input_tokens": 1, "output_tokens": 1, "input_tokens_details": {"image_tokens": -1}},
    "lots",
]
BAD_CHAT_USAGE: list[Any] = [
    {"prompt_tokens": 10, "completion_tokens": -1000},
    {"prompt_tokens": 10**19, "completion_tokens": 1},
    {"prompt_tokens": 1.5e20, "completion_tokens": 1},
    [1, 2],
]
BAD_GEMINI_USAGE: list[Any] = [
    {"promptTokenCount": 10, "candidatesTokenCount": -1000},
    {"promptTokenCount": 10**19, "candidatesTokenCount": 1},
    {"promptTokenCount": 1.5e20},
    {"promptTokenCount": 1, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": -4}]},
    [1, 2],
]


def set_usage(setup: Setup, usage: Any) -> None:
    if setup.kind == "gemini":
        setup.upstream.usage_metadata = usage
    else:
        setup.upstream.usage = usage


def bad_usages(kind: str) -> list[Any]:
    return {"openai": BAD_OPENAI_USAGE, "openai-chat-image": BAD_CHAT_USAGE, "gemini": BAD_GEMINI_USAGE}[kind]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_impossible_usage_is_a_502_upstream_malformed(setup: Setup, stream: bool) -> None:
    for usage in bad_usages(setup.kind):
        set_usage(setup, usage)
        with pytest.raises(UpstreamMalformed) as caught:
            await run(setup, stream=stream)
        error = caught.value
        assert (error.status, error.type, error.code) == (502, "upstream_malformed", "upstream_malformed"), (
            usage
        )


async def test_sane_usage_still_passes(setup: Setup) -> None:
    good = {
        "openai": {"input_tokens": 12, "output_tokens": 272, "input_tokens_details": {"text_tokens": 12}},
        "openai-chat-image": {"prompt_tokens": 12, "completion_tokens": 272},
        "gemini": {"promptTokenCount": 12, "candidatesTokenCount": 272},
    }[setup.kind]
    set_usage(setup, good)
    final = (await run(setup, stream=False))[-1]
    assert isinstance(final, ImageResult)
    assert final.usage is not None and (final.usage.input_tokens, final.usage.output_tokens) == (12, 272)


def test_usage_from_wire_checks_every_number() -> None:
    assert Usage.from_wire(None) is None
    assert Usage.from_wire({"input_tokens": 3.0, "output_tokens": 0}) == Usage(3, 0, 0, 0)
    for bad in BAD_OPENAI_USAGE:
        with pytest.raises(ValueError, match="usage"):
            Usage.from_wire(bad)
