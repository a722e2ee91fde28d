"""A Gemini ("nano banana") channel end to end: the openai SDK → the gateway → a fake Gemini upstream."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import openai
import pytest
import requests
from openai import OpenAI

from tests.conftest import GatewayFactory, LiveGateway, image_bytes, open_image
from tests.fakes.gemini_upstream import FakeGeminiUpstream

MODEL = "gemini-2.5-flash-image"


@pytest.fixture
def gemini() -> Iterator[FakeGeminiUpstream]:
    fake = FakeGeminiUpstream().start_in_thread()
    yield fake
    fake.stop()


@pytest.fixture
def client(make_gateway: GatewayFactory, gemini: FakeGeminiUpstream) -> OpenAI:
    gateway: LiveGateway = make_gateway(
        channels=[
            {
                "name": "banana",
                "provider": "gemini",
                "base_url": gemini.base_url,
                "api_key": gemini.api_key,
                "models": [MODEL],
                "timeout_s": 30,
            }
        ]
    )
    return gateway.client()


def decode(b64: str | None) -> Any:
    return open_image(base64.b64decode(b64 or ""))


@pytest.mark.parametrize(("fmt", "pil_format"), [("webp", "WEBP"), ("jpeg", "JPEG"), ("png", "PNG")])
def test_generation_is_transcoded_and_reports_the_mapped_size(
    client: OpenAI, gemini: FakeGeminiUpstream, fmt: str, pil_format: str
) -> None:
    result = client.images.generate(
        model=MODEL,
        prompt="a banana on the moon",
        size="1536x1024",
        output_format=fmt,  # type: ignore[arg-type]
        response_format="b64_json",
    )

    sent = gemini.requests[-1]
    assert sent.path == f"/v1beta/models/{MODEL}:generateContent"
    assert sent.headers["x-goog-api-key"] == gemini.api_key
    assert sent.prompt == "a banana on the moon"
    assert sent.image_config == {"aspectRatio": "3:2"}
    assert result.data is not None and len(result.data) == 1
    image = decode(result.data[0].b64_json)
    # 1536x1024 is 3:2, which gemini-2.5-flash-image draws at 1248x832: the client is told so.
    assert (image.format, image.size) == (pil_format, (1248, 832))
    assert result.size == "1248x832"
    assert result.output_format == fmt


def test_usage_reaches_the_response(client: OpenAI) -> None:
    result = client.images.generate(model=MODEL, prompt="a banana on the moon", size="1024x1024")

    assert result.usage is not None
    assert result.usage.input_tokens == 5
    assert result.usage.input_tokens_details.text_tokens == 5
    assert result.usage.input_tokens_details.image_tokens == 0
    assert result.usage.output_tokens == 1290
    assert result.usage.total_tokens == 1295
    assert result.size == "1024x1024"


def test_hosted_url_and_n(client: OpenAI, gemini: FakeGeminiUpstream) -> None:
    result = client.images.generate(model=MODEL, prompt="two bananas", n=2, size="1024x1792")

    assert len(gemini.requests) == 2
    assert result.data is not None and len(result.data) == 2
    for item in result.data:
        assert item.url is not None
        image = open_image(requests.get(item.url, timeout=10).content)
        assert (image.format, image.size) == ("PNG", (768, 1344))  # 9:16
    assert result.size == "768x1344"
    assert result.usage is not None and result.usage.output_tokens == 2 * 1290


def test_edit_with_three_images(client: OpenAI, gemini: FakeGeminiUpstream) -> None:
    inputs = [
        image_bytes((300, 200), "PNG", (200, 30, 30)),
        image_bytes((64, 64), "JPEG", (30, 200, 30)),
        image_bytes((80, 40), "WEBP", (30, 30, 200)),
    ]
    result = client.images.edit(
        model=MODEL,
        image=[(f"in{i}.bin", data, "application/octet-stream") for i, data in enumerate(inputs)],
        prompt="put the three together",
        size="1024x1024",
        output_format="webp",
        response_format="b64_json",
    )

    sent = gemini.requests[-1]
    assert sent.prompt == "put the three together"
    assert [mime for mime, _ in sent.images] == ["image/png", "image/jpeg", "image/webp"]
    assert [data for _, data in sent.images] == inputs  # all three, in order, unchanged
    assert sent.image_config == {"aspectRatio": "1:1"}
    assert result.data is not None
    assert decode(result.data[0].b64_json).format == "WEBP"
    assert result.usage is not None
    assert result.usage.input_tokens_details.image_tokens == 3 * 258


def test_a_mask_is_a_400(client: OpenAI, gemini: FakeGeminiUpstream) -> None:
    png = image_bytes((64, 64), "PNG", (200, 30, 30, 255), mode="RGBA")
    with pytest.raises(openai.BadRequestError) as caught:
        client.images.edit(model=MODEL, image=("a.png", png), mask=("m.png", png), prompt="x")
    assert caught.value.body is not None
    assert caught.value.body["param"] == "mask"  # type: ignore[index]
    assert gemini.requests == []


def _error_of(client: OpenAI, exc_type: type[openai.APIStatusError]) -> openai.APIStatusError:
    with pytest.raises(exc_type) as caught:
        client.images.generate(model=MODEL, prompt="a banana on the moon")
    return caught.value


def test_image_safety_is_a_moderation_400(client: OpenAI, gemini: FakeGeminiUpstream) -> None:
    gemini.finish_reason = "IMAGE_SAFETY"
    error = _error_of(client, openai.BadRequestError)
    body: dict[str, Any] = error.response.json()["error"]
    assert body["code"] == "moderation_blocked"
    assert body["type"] == "invalid_request_error"
    assert "IMAGE_SAFETY" in body["message"]


def test_prompt_feedback_block_is_a_moderation_400(client: OpenAI, gemini: FakeGeminiUpstream) -> None:
    gemini.block_reason = "SAFETY"
    error = _error_of(client, openai.BadRequestError)
    assert error.response.json()["error"]["code"] == "moderation_blocked"
    assert "blockReason SAFETY" in error.response.json()["error"]["message"]


def test_no_image_is_a_400_with_the_models_words(client: OpenAI, gemini: FakeGeminiUpstream) -> None:
    gemini.finish_reason = "NO_IMAGE"
    gemini.model_text = "I cannot draw that banana."
    error = _error_of(client, openai.BadRequestError)
    assert error.response.json()["error"]["code"] == "no_image"
    assert "I cannot draw that banana." in error.response.json()["error"]["message"]


def test_upstream_401_is_a_502_without_the_key(client: OpenAI, gemini: FakeGeminiUpstream) -> None:
    gemini.fail_status = 401
    error = _error_of(client, openai.InternalServerError)
    assert error.status_code == 502
    assert error.response.json()["error"]["code"] == "upstream_auth_failed"
    assert gemini.api_key not in error.response.text


def test_a_wrong_key_is_a_502_not_a_400(make_gateway: GatewayFactory, gemini: FakeGeminiUpstream) -> None:
    channel = {"name": "banana", "provider": "gemini", "base_url": gemini.base_url, "models": [MODEL]}
    gateway = make_gateway(channels=[{**channel, "api_key": "AIza-not-the-right-key"}])
    error = _error_of(gateway.client(), openai.InternalServerError)
    assert error.status_code == 502
    assert error.response.json()["error"]["code"] == "upstream_auth_failed"
    assert "AIza-not-the-right-key" not in error.response.text


def test_upstream_429_is_a_429(client: OpenAI, gemini: FakeGeminiUpstream) -> None:
    gemini.fail_status = 429
    gemini.retry_delay = "20s"
    error = _error_of(client, openai.RateLimitError)
    assert error.response.json()["error"]["code"] == "rate_limit_exceeded"
    assert error.response.headers.get("Retry-After") == "20"


def test_upstream_500_is_a_502(client: OpenAI, gemini: FakeGeminiUpstream) -> None:
    gemini.fail_status = 500
    error = _error_of(client, openai.InternalServerError)
    assert error.status_code == 502
    assert error.response.json()["error"]["type"] == "upstream_error"


def test_a_stream_gets_one_completed_event_with_the_mapped_size(client: OpenAI) -> None:
    events = list(
        client.images.generate(
            model=MODEL, prompt="x", size="1536x1024", stream=True, partial_images=2, output_format="jpeg"
        )
    )

    assert [event.type for event in events] == ["image_generation.completed"]
    completed = events[0]
    image = decode(completed.b64_json)
    assert (image.format, image.size) == ("JPEG", (1248, 832))
    assert completed.size == "1248x832"
    assert completed.usage is not None and completed.usage.output_tokens == 1290
