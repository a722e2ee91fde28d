"""/v1/images/generations driven by the official openai SDK, against demo and a fake upstream."""

from __future__ import annotations

import base64
from collections.abc import Callable
from functools import partial

import openai
import pytest
import requests
from openai import OpenAI

from tests.conftest import LiveGateway, open_image
from tests.fakes.openai_upstream import FakeOpenAIUpstream


def fetch(url: str) -> tuple[bytes, requests.Response]:
    response = requests.get(url, timeout=10)
    assert response.status_code == 200, response.text
    return response.content, response


def test_url_result_is_hosted_png_of_the_asked_size(client: OpenAI, gateway: LiveGateway) -> None:
    result = client.images.generate(model="demo", prompt="a lighthouse at dusk", size="1536x1024")

    assert result.data is not None and len(result.data) == 1
    url = result.data[0].url
    assert url is not None and url.startswith(f"{gateway.url}/files/")
    data, response = fetch(url)
    image = open_image(data)
    assert (image.format, image.size) == ("PNG", (1536, 1024))
    assert response.headers["content-type"] == "image/png"
    assert response.headers["etag"].strip('"') in url
    assert "immutable" in response.headers["cache-control"]
    assert (result.size, result.output_format) == ("1536x1024", "png")
    assert result.usage is not None and result.usage.total_tokens > 0


def test_b64_json_with_n_3_gives_three_distinct_images(client: OpenAI) -> None:
    result = client.images.generate(
        model="demo", prompt="three cats", n=3, size="1024x1024", response_format="b64_json"
    )

    assert result.data is not None and len(result.data) == 3
    payloads = [base64.b64decode(item.b64_json or "") for item in result.data]
    assert len(set(payloads)) == 3
    for payload in payloads:
        assert open_image(payload).size == (1024, 1024)


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ("2048x1152", (2048, 1152)),
        ("3840x2160", (3840, 2160)),
        ("1024x3072", (1024, 3072)),
        ("auto", (1024, 1024)),
    ],
)
def test_custom_sizes(client: OpenAI, size: str, expected: tuple[int, int]) -> None:
    result = client.images.generate(model="demo", prompt="a panorama", size=size, response_format="b64_json")

    assert result.data is not None
    assert open_image(base64.b64decode(result.data[0].b64_json or "")).size == expected


@pytest.mark.parametrize(("fmt", "pil_format"), [("jpeg", "JPEG"), ("webp", "WEBP")])
def test_lossy_formats_honour_compression(client: OpenAI, fmt: str, pil_format: str) -> None:
    sizes = []
    for compression in (20, 95):
        result = client.images.generate(
            model="demo",
            prompt="a forest",
            size="1024x1024",
            output_format=fmt,  # type: ignore[arg-type]
            output_compression=compression,
            response_format="b64_json",
        )
        assert result.data is not None and result.output_format == fmt
        payload = base64.b64decode(result.data[0].b64_json or "")
        assert open_image(payload).format == pil_format
        sizes.append(len(payload))
    assert sizes[0] < sizes[1]


@pytest.mark.parametrize("fmt", ["png", "webp"])
def test_transparent_background(client: OpenAI, gateway: LiveGateway, fmt: str) -> None:
    result = client.images.generate(
        model="demo",
        prompt="a sticker",
        size="1024x1024",
        background="transparent",
        output_format=fmt,  # type: ignore[arg-type]
    )

    assert result.data is not None and result.data[0].url is not None
    assert result.data[0].url.endswith(f".{fmt}")
    image = open_image(fetch(result.data[0].url)[0])
    assert image.mode in ("RGBA", "LA")
    assert image.getpixel((0, 0))[-1] == 0  # type: ignore[index]
    assert result.background == "transparent"


def test_identical_images_are_stored_once(client: OpenAI, gateway: LiveGateway) -> None:
    first = client.images.generate(model="demo", prompt="same", size="1024x1024")
    second = client.images.generate(model="demo", prompt="same", size="1024x1024")

    assert first.data and second.data and first.data[0].url == second.data[0].url
    stored = list((gateway.settings.images_dir).rglob("*.png"))
    assert len(stored) == 1


def test_api_key_from_the_key_store(gateway: LiveGateway) -> None:
    key = gateway.create_key("alice")
    result = gateway.client(api_key=key).images.generate(model="demo", prompt="hello", size="1024x1024")

    assert result.data


class TestOpenAIUpstream:
    def test_generation_is_forwarded_and_returned(
        self, upstream_gateway: LiveGateway, upstream: FakeOpenAIUpstream
    ) -> None:
        client = upstream_gateway.client()
        result = client.images.generate(
            model="gpt-image-2",
            prompt="an otter",
            size="1536x1024",
            quality="high",
            n=2,
            output_format="webp",
            output_compression=80,
            background="opaque",
            moderation="low",
            user="user-42",
            response_format="b64_json",
            extra_body={"future_field": "kept"},
        )

        sent = upstream.requests[-1]
        assert sent.path == "/v1/images/generations"
        assert sent.headers["Authorization"] == f"Bearer {upstream.api_key}"
        assert sent.body["model"] == "gpt-image-2-2026-04-21"  # model_map applied
        assert sent.body["prompt"] == "an otter"
        assert sent.body["n"] == 2 and sent.body["size"] == "1536x1024" and sent.body["quality"] == "high"
        assert sent.body["output_format"] == "webp" and sent.body["output_compression"] == 80
        assert sent.body["moderation"] == "low" and sent.body["user"] == "user-42"
        assert sent.body["future_field"] == "kept"
        assert "response_format" not in sent.body  # gpt-image upstreams reject it
        assert result.data is not None and len(result.data) == 2
        for item in result.data:
            image = open_image(base64.b64decode(item.b64_json or ""))
            assert (image.format, image.size) == ("WEBP", (1536, 1024))
        assert result.usage is not None and result.usage.output_tokens > 0
        assert result.size == "1536x1024" and result.quality == "high"

    def test_gateway_transcodes_when_upstream_ignores_the_format(
        self, upstream_gateway: LiveGateway, upstream: FakeOpenAIUpstream
    ) -> None:
        upstream.force_format = "png"
        result = upstream_gateway.client().images.generate(
            model="gpt-image-2",
            prompt="x",
            size="1024x1024",
            output_format="jpeg",
            response_format="b64_json",
        )

        assert result.data is not None
        image = open_image(base64.b64decode(result.data[0].b64_json or ""))
        assert (image.format, image.size) == ("JPEG", (1024, 1024))
        assert result.output_format == "jpeg"

    def test_upstream_url_results_are_downloaded_and_hosted(
        self, upstream_gateway: LiveGateway, upstream: FakeOpenAIUpstream
    ) -> None:
        upstream.mode = "url"
        result = upstream_gateway.client().images.generate(
            model="gpt-image-1", prompt="x", size="1024x1536", output_format="png"
        )

        assert result.data is not None and result.data[0].url is not None
        assert result.data[0].url.startswith(upstream_gateway.url)
        image = open_image(fetch(result.data[0].url)[0])
        assert (image.format, image.size) == ("PNG", (1024, 1536))

    def test_upstream_url_results_as_b64(
        self, upstream_gateway: LiveGateway, upstream: FakeOpenAIUpstream
    ) -> None:
        upstream.mode = "url"
        result = upstream_gateway.client().images.generate(
            model="gpt-image-1", prompt="x", size="1024x1024", response_format="b64_json"
        )

        assert result.data is not None
        assert open_image(base64.b64decode(result.data[0].b64_json or "")).size == (1024, 1024)


def test_an_unknown_model_names_the_models_the_key_can_use_and_how_to_add_one(gateway: LiveGateway) -> None:
    narrow = gateway.create_key("chat-only", models=["demo-chat"])
    for secret, offered in ((narrow, "demo-chat."), (gateway.create_key("all"), "demo, demo-chat.")):
        client = gateway.client(secret)
        calls: list[Callable[[], object]] = [
            partial(client.images.generate, model="gpt-image-9", prompt="x"),
            partial(client.models.retrieve, "gpt-image-9"),
            partial(
                client.chat.completions.create,
                model="gpt-image-9",
                messages=[{"role": "user", "content": "x"}],
            ),
        ]
        for call in calls:
            with pytest.raises(openai.NotFoundError) as caught:
                call()
            assert caught.value.code == "model_not_found"
            assert f"Models this key can use: {offered}" in caught.value.message
            assert "channel" in caught.value.message
