"""The openai-chat-image provider against a fake chat-image upstream on loopback."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
import requests

from tests.api.test_chat import image_urls
from tests.conftest import GatewayFactory, LiveGateway, image_bytes, open_image
from tests.fakes.chat_image_upstream import FakeChatImageUpstream


@pytest.fixture
def chat_upstream() -> Iterator[FakeChatImageUpstream]:
    fake = FakeChatImageUpstream().start_in_thread()
    yield fake
    fake.stop()


@pytest.fixture
def chat_gateway(make_gateway: GatewayFactory, chat_upstream: FakeChatImageUpstream) -> LiveGateway:
    return make_gateway(
        channels=[
            {
                "name": "relay-chat",
                "provider": "openai-chat-image",
                "base_url": chat_upstream.base_url,
                "api_key": chat_upstream.api_key,
                "models": ["gpt-image-2"],
                "model_map": {"gpt-image-2": "gpt-image-2-chat"},
            }
        ],
        models={"gpt-image-2-chat": {"kind": "chat-image", "image_model": "gpt-image-2"}},
    )


@pytest.mark.parametrize("style", ["markdown", "bare_url", "data_uri", "images_array"])
def test_chat_model_through_a_chat_image_upstream(
    chat_gateway: LiveGateway, chat_upstream: FakeChatImageUpstream, style: str
) -> None:
    chat_upstream.style = style
    completion = chat_gateway.client().chat.completions.create(
        model="gpt-image-2-chat", messages=[{"role": "user", "content": "2048x1152 'a harbour'"}]
    )

    sent = chat_upstream.requests[-1]
    assert sent["model"] == "gpt-image-2-chat"
    assert sent["messages"][0]["content"][0]["text"] == "2048x1152 'a harbour'"
    url = image_urls(completion.choices[0].message.content)[0]
    assert url.startswith(chat_gateway.url)  # hosted by the gateway, whatever the upstream returned
    assert open_image(requests.get(url, timeout=10).content).size == (2048, 1152)
    assert completion.usage is not None and completion.usage.completion_tokens == 1000


def test_images_api_through_a_chat_image_upstream(
    chat_gateway: LiveGateway, chat_upstream: FakeChatImageUpstream
) -> None:
    client = chat_gateway.client()
    generated = client.images.generate(
        model="gpt-image-2", prompt="a kite", size="1536x1024", n=2, response_format="b64_json"
    )
    edited = client.images.edit(
        model="gpt-image-2",
        image=[image_bytes(), image_bytes()],
        prompt="merge",
        size="1024x1024",
        output_format="jpeg",
        response_format="b64_json",
    )

    assert generated.data is not None and len(generated.data) == 2
    assert open_image(base64.b64decode(generated.data[0].b64_json or "")).size == (1536, 1024)
    edit_request = chat_upstream.requests[-1]["messages"][0]["content"]
    assert [part["type"] for part in edit_request] == ["text", "image_url", "image_url"]
    assert edit_request[1]["image_url"]["url"].startswith("data:image/png;base64,")
    assert edited.data is not None
    image = open_image(base64.b64decode(edited.data[0].b64_json or ""))
    assert (image.format, image.size) == ("JPEG", (1024, 1024))


def test_reply_without_an_image_is_a_502(
    chat_gateway: LiveGateway, chat_upstream: FakeChatImageUpstream
) -> None:
    chat_upstream.style = "text_only"
    response = requests.post(
        f"{chat_gateway.url}/v1/images/generations",
        headers={"Authorization": "Bearer " + "sk-test-admin-key"},
        json={"model": "gpt-image-2", "prompt": "x", "size": "1024x1024"},
        timeout=10,
    )

    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_no_image"
    assert chat_upstream.api_key not in response.text
