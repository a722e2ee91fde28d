"""One echo rule: a streamed and a plain request with the same body report the same image.

``quality``, ``background``, ``output_format`` and ``size`` come from what was made, for JSON
bodies and stream events alike — through demo and through an OpenAI upstream, on the image
endpoints and on chat-image models.
"""

from __future__ import annotations

from typing import Any

import pytest
from openai import OpenAI
from openai.types import ImageEditCompletedEvent, ImageGenCompletedEvent

from tests.api.test_chat import fetch_image, image_urls
from tests.conftest import GatewayFactory, LiveGateway, image_bytes
from tests.fakes.openai_upstream import FakeOpenAIUpstream

ECHOED = ("quality", "background", "output_format", "size")


@pytest.fixture
def both(make_gateway: GatewayFactory, upstream: FakeOpenAIUpstream) -> LiveGateway:
    """Demo beside gpt-image-2 on the fake OpenAI upstream, each with a chat-image face."""
    return make_gateway(
        channels=[
            {
                "name": "images",
                "provider": "openai",
                "base_url": upstream.base_url,
                "api_key": upstream.api_key,
                "models": ["gpt-image-2"],
            }
        ],
        models={"gpt-image-2-chat": {"kind": "chat-image", "image_model": "gpt-image-2"}},
    )


def _plain(response: Any) -> dict[str, Any]:
    return {name: getattr(response, name) for name in ECHOED}


def _streamed(events: list[Any]) -> dict[str, Any]:
    completed = [e for e in events if isinstance(e, ImageGenCompletedEvent | ImageEditCompletedEvent)]
    assert len(completed) == 1
    return {name: getattr(completed[0], name) for name in ECHOED}


BODIES = [
    {"size": "1024x1024"},
    {"size": "1536x1024", "quality": "high", "output_format": "webp"},
    {"size": "1024x1536", "background": "transparent", "output_format": "png", "quality": "low"},
    {"output_format": "jpeg"},
]


@pytest.mark.parametrize("model", ["demo", "gpt-image-2"])
@pytest.mark.parametrize("body", BODIES, ids=["square", "webp-high", "transparent", "jpeg-auto-size"])
def test_generation_stream_and_json_echo_the_same(
    both: LiveGateway, model: str, body: dict[str, Any]
) -> None:
    client = both.client()
    plain = client.images.generate(model=model, prompt="a lighthouse", **body)
    streamed = list(client.images.generate(model=model, prompt="a lighthouse", stream=True, **body))
    assert _streamed(streamed) == _plain(plain)
    if "quality" in body:
        assert plain.quality == body["quality"]
    if "output_format" in body:
        assert plain.output_format == body["output_format"]


@pytest.mark.parametrize("model", ["demo", "gpt-image-2"])
def test_edit_stream_and_json_echo_the_same(both: LiveGateway, model: str) -> None:
    client = both.client()
    fields: dict[str, Any] = {"model": model, "prompt": "tint", "size": "1024x1024", "output_format": "webp"}
    plain = client.images.edit(image=image_bytes((1024, 1024)), **fields)
    streamed = list(client.images.edit(image=image_bytes((1024, 1024)), stream=True, **fields))
    assert _streamed(streamed) == _plain(plain)


@pytest.mark.parametrize("model", ["demo-chat", "gpt-image-2-chat"])
def test_chat_stream_and_json_deliver_the_same_image(both: LiveGateway, model: str) -> None:
    client: OpenAI = both.client()
    messages: Any = [{"role": "user", "content": "1536x1024 'a red kite'"}]
    metadata = {"output_format": "webp", "quality": "low"}
    plain = client.chat.completions.create(model=model, messages=messages, metadata=metadata)
    chunks = list(
        client.chat.completions.create(model=model, messages=messages, metadata=metadata, stream=True)
    )
    streamed_content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    (plain_url,) = image_urls(plain.choices[0].message.content)
    (streamed_url,) = image_urls(streamed_content)
    assert fetch_image(plain_url) == fetch_image(streamed_url) == ("WEBP", (1536, 1024))
