"""Chat-image replies as LobeChat-style clients read them: ``message.images`` / ``delta.images`` (SPEC §4).

OpenRouter's shape, ``images: [{"type": "image_url", "image_url": {"url": …}}]``, beside the
Markdown; and ``size_policy = "nearest"`` for chat clients that always send one size.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_KEY, GatewayFactory, LiveGateway, open_image

MARKDOWN_URL = re.compile(r"!\[image\]\(([^)]+)\)")


def chat(gateway: LiveGateway, **body: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    return httpx.post(f"{gateway.url}/v1/chat/completions", json=body, headers=headers, timeout=30)


def image_size(url: str) -> tuple[int, int]:
    size: tuple[int, int] = open_image(httpx.get(url, timeout=10).content).size
    return size


def data_events(response: httpx.Response) -> list[Any]:
    return [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: {")]


def test_the_message_carries_its_images(gateway: LiveGateway) -> None:
    response = chat(
        gateway, model="demo-chat", messages=[{"role": "user", "content": "1024x1024 'a fox'"}], n=2
    )

    assert response.status_code == 200, response.text
    message = response.json()["choices"][0]["message"]
    urls = MARKDOWN_URL.findall(message["content"])
    assert len(urls) == 2
    assert message["images"] == [{"type": "image_url", "image_url": {"url": url}} for url in urls]
    assert [image_size(url) for url in urls] == [(1024, 1024), (1024, 1024)]


def test_the_streamed_content_chunk_carries_its_images(gateway: LiveGateway) -> None:
    response = chat(gateway, model="demo-chat", messages=[{"role": "user", "content": "a fox"}], stream=True)

    assert response.status_code == 200, response.text
    deltas = [event["choices"][0]["delta"] for event in data_events(response) if event["choices"]]
    with_images = [delta for delta in deltas if "images" in delta]
    assert len(with_images) == 1
    (url,) = MARKDOWN_URL.findall(with_images[0]["content"])
    assert with_images[0]["images"] == [{"type": "image_url", "image_url": {"url": url}}]
    assert image_size(url) == (1024, 1024)


@pytest.mark.parametrize(
    "models",
    [
        {"demo": {"sizes": "custom", "size_policy": "nearest"}},  # the image model says nearest
        {
            "demo-chat": {"kind": "chat-image", "image_model": "demo", "size_policy": "nearest"}
        },  # the chat face
    ],
)
def test_a_chat_client_that_sends_512_gets_the_nearest_size(
    make_gateway: GatewayFactory, models: dict[str, Any]
) -> None:
    gateway = make_gateway(models=models)

    response = chat(
        gateway,
        model="demo-chat",
        messages=[{"role": "user", "content": "a fox"}],
        metadata={"size": "512x512"},
    )

    assert response.status_code == 200, response.text
    (image,) = response.json()["choices"][0]["message"]["images"]
    assert image_size(image["image_url"]["url"]) == (816, 816)


def test_without_nearest_a_chat_client_gets_the_400(gateway: LiveGateway) -> None:
    response = chat(
        gateway,
        model="demo-chat",
        messages=[{"role": "user", "content": "a fox"}],
        metadata={"size": "512x512"},
    )

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "metadata.size"
