"""The OpenAI provider against a real loopback server that speaks OpenAI's Images API."""

from __future__ import annotations

import io
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from PIL import Image

from imagegate.domain import ImageRequest, ImageResult, InputImage, PartialImage, ProviderEvent
from imagegate.errors import (
    GatewayError,
    RateLimited,
    UpstreamFailed,
    UpstreamRejected,
    UpstreamTimeout,
)
from imagegate.http import HttpClients
from imagegate.providers.openai import OpenAIProvider
from imagegate.settings import ChannelConfig
from tests.fakes.openai_upstream import FakeOpenAIUpstream

PUBLIC_MODEL = "gpt-image-2"
MAPPED_MODEL = "gpt-image-2-2026-04-21"


@pytest.fixture
async def upstream() -> AsyncIterator[FakeOpenAIUpstream]:
    async with FakeOpenAIUpstream() as fake:
        yield fake


def make_provider(http: HttpClients, base_url: str, api_key: str, **channel: Any) -> OpenAIProvider:
    config = ChannelConfig(
        name="main",
        provider="openai",
        base_url=base_url,
        api_key=api_key,
        models=[PUBLIC_MODEL],
        model_map={PUBLIC_MODEL: MAPPED_MODEL},
        **channel,
    )
    return OpenAIProvider(config, http)


@pytest.fixture
def provider(http: HttpClients, upstream: FakeOpenAIUpstream) -> OpenAIProvider:
    return make_provider(http, upstream.base_url, upstream.api_key)


async def run(provider: OpenAIProvider, request: ImageRequest) -> list[ProviderEvent]:
    upstream_model = provider.channel.upstream_model(request.model)
    return [event async for event in provider.run(request, upstream_model)]


async def result_of(provider: OpenAIProvider, request: ImageRequest) -> ImageResult:
    events = await run(provider, request)
    assert len(events) == 1
    assert isinstance(events[0], ImageResult)
    return events[0]


def generation(**fields: Any) -> ImageRequest:
    return ImageRequest(operation="generate", model=PUBLIC_MODEL, prompt="a red fox in snow", **fields)


def png(width: int = 64, height: int = 48, mode: str = "RGB") -> InputImage:
    out = io.BytesIO()
    Image.new(mode, (width, height), "teal").save(out, "PNG")
    return InputImage(data=out.getvalue(), format="png", width=width, height=height, has_alpha=mode == "RGBA")


def opened(raw: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(raw))
    image.load()
    return image


async def test_generation_sends_openai_fields_and_the_mapped_model(
    provider: OpenAIProvider, upstream: FakeOpenAIUpstream
) -> None:
    request = generation(n=2, size="1536x1024", quality="high", output_format="webp", output_compression=70)
    request.moderation, request.user = "low", "user-42"
    result = await result_of(provider, request)

    sent = upstream.requests[-1]
    assert sent.path == "/v1/images/generations"
    assert sent.headers["Authorization"] == f"Bearer {upstream.api_key}"
    assert sent.json == {
        "model": MAPPED_MODEL,
        "prompt": "a red fox in snow",
        "n": 2,
        "size": "1536x1024",
        "quality": "high",
        "output_format": "webp",
        "output_compression": 70,
        "moderation": "low",
        "user": "user-42",
    }
    assert len(result.images) == 2
    blob = result.images[0].blob
    assert blob is not None and blob.format == "webp"
    assert opened(blob.raw()).size == (1536, 1024)
    assert result.size == "1536x1024" and result.quality == "high" and result.output_format == "webp"
    assert result.usage is not None and result.usage.output_tokens == 544
    assert result.usage.text_tokens == 5 and isinstance(result.created, int)


async def test_generation_leaves_unset_fields_out_and_forwards_unknown_ones(
    provider: OpenAIProvider, upstream: FakeOpenAIUpstream
) -> None:
    request = generation(output_compression=50, extra={"style": "vivid", "n": 9})
    await result_of(provider, request)
    sent = upstream.requests[-1].json
    assert sent is not None
    # No response_format (gpt-image rejects it), no compression for the default PNG, and an
    # unknown field never overrides a known one.
    assert sent == {
        "model": MAPPED_MODEL,
        "prompt": "a red fox in snow",
        "n": 1,
        "size": "auto",
        "style": "vivid",
    }


@pytest.mark.parametrize(
    ("model", "options", "expected"),
    [("dall-e-3", {}, "b64_json"), (PUBLIC_MODEL, {"send_response_format": True}, "b64_json")],
)
async def test_response_format_only_for_dalle_or_when_configured(
    http: HttpClients, upstream: FakeOpenAIUpstream, model: str, options: dict[str, Any], expected: str
) -> None:
    provider = make_provider(http, upstream.base_url, upstream.api_key, options=options)
    events = [e async for e in provider.generate(generation(), model)]
    assert isinstance(events[-1], ImageResult)
    sent = upstream.requests[-1].json
    assert sent is not None and sent["response_format"] == expected and sent["model"] == model


async def test_edit_with_one_image_uses_the_image_field(
    provider: OpenAIProvider, upstream: FakeOpenAIUpstream
) -> None:
    request = ImageRequest(
        operation="edit",
        model=PUBLIC_MODEL,
        prompt="add a hat",
        size="1024x1536",
        input_fidelity="high",
        output_compression=100,
        images=[png()],
    )
    result = await result_of(provider, request)
    sent = upstream.requests[-1]
    assert sent.path == "/v1/images/edits"
    assert [(f.field, f.filename, f.content_type) for f in sent.images] == [
        ("image", "image_0.png", "image/png")
    ]
    assert sent.images[0].data == request.images[0].data
    assert sent.fields == {
        "model": MAPPED_MODEL,
        "prompt": "add a hat",
        "n": "1",
        "size": "1024x1536",
        "input_fidelity": "high",
    }
    blob = result.images[0].blob
    assert blob is not None and opened(blob.raw()).size == (1024, 1536)


async def test_edit_with_three_images_and_a_mask(
    provider: OpenAIProvider, upstream: FakeOpenAIUpstream
) -> None:
    jpeg = io.BytesIO()
    Image.new("RGB", (32, 32), "red").save(jpeg, "JPEG")
    images = [png(), InputImage(data=jpeg.getvalue(), format="jpeg", width=32, height=32), png(20, 20)]
    request = ImageRequest(
        operation="edit",
        model=PUBLIC_MODEL,
        prompt="merge them",
        n=2,
        background="transparent",
        output_format="png",
        images=images,
        mask=png(64, 48, "RGBA"),
    )
    result = await result_of(provider, request)
    sent = upstream.requests[-1]
    assert [(f.field, f.filename, f.content_type) for f in sent.images] == [
        ("image[]", "image_0.png", "image/png"),
        ("image[]", "image_1.jpeg", "image/jpeg"),
        ("image[]", "image_2.png", "image/png"),
    ]
    assert sent.mask is not None and sent.mask.filename == "mask.png" and sent.mask.data == request.mask.data
    assert sent.fields["background"] == "transparent" and sent.fields["n"] == "2"
    assert len(result.images) == 2 and result.background == "transparent"
    assert result.usage is not None and result.usage.image_tokens == 3 * 65
    blob = result.images[1].blob
    assert blob is not None and opened(blob.raw()).mode == "RGBA"


async def test_url_mode_returns_the_upstreams_urls(
    provider: OpenAIProvider, upstream: FakeOpenAIUpstream, http: HttpClients
) -> None:
    upstream.mode = "url"
    result = await result_of(provider, generation(size="1024x1024", output_format="jpeg"))
    image = result.images[0]
    assert image.blob is None and image.url is not None
    # The gateway fetches such links itself (services), not through the provider.
    async with http.upstream.get(image.url) as response:
        assert opened(await response.read()).format == "JPEG"


async def test_streaming_relays_partials_then_one_result(
    provider: OpenAIProvider, upstream: FakeOpenAIUpstream
) -> None:
    request = generation(n=2, size="1024x1024", stream=True, partial_images=2)
    events = await run(provider, request)
    sent = upstream.requests[-1].json
    assert sent is not None and sent["stream"] is True and sent["partial_images"] == 2
    partials, final = events[:-1], events[-1]
    assert [type(e) for e in partials] == [PartialImage, PartialImage]
    assert [e.index for e in partials if isinstance(e, PartialImage)] == [0, 1]
    first = partials[0]
    assert isinstance(first, PartialImage) and first.size == "1024x1024"
    assert opened(first.image.raw()).size == (1024, 1024)
    assert isinstance(final, ImageResult) and len(final.images) == 2
    assert final.usage is not None and final.usage.total_tokens > 0
    assert final.output_format == "png" and isinstance(final.created, int)


async def test_streamed_edit_uses_edit_events(provider: OpenAIProvider, upstream: FakeOpenAIUpstream) -> None:
    request = ImageRequest(
        operation="edit", model=PUBLIC_MODEL, prompt="p", stream=True, partial_images=1, images=[png()]
    )
    events = await run(provider, request)
    assert upstream.requests[-1].fields["stream"] == "true"
    assert isinstance(events[0], PartialImage) and isinstance(events[1], ImageResult)


async def test_an_upstream_that_ignores_stream_still_gives_a_result(
    provider: OpenAIProvider, upstream: FakeOpenAIUpstream
) -> None:
    upstream.stream_supported = False
    result = await result_of(provider, generation(stream=True, partial_images=3))
    assert len(result.images) == 1 and result.images[0].blob is not None


async def test_an_error_event_mid_stream_is_raised_after_the_partials(
    provider: OpenAIProvider, upstream: FakeOpenAIUpstream
) -> None:
    upstream.stream_error = {
        "message": "Your request was rejected by the safety system.",
        "type": "invalid_request_error",
        "param": None,
        "code": "moderation_blocked",
    }
    seen: list[ProviderEvent] = []
    with pytest.raises(UpstreamRejected) as caught:
        async for event in provider.run(generation(stream=True, partial_images=1), MAPPED_MODEL):
            seen.append(event)
    assert len(seen) == 1 and isinstance(seen[0], PartialImage)
    assert caught.value.code == "moderation_blocked" and caught.value.status == 400


async def test_moderation_block_passes_through(
    provider: OpenAIProvider, upstream: FakeOpenAIUpstream
) -> None:
    upstream.fail_status = 400
    upstream.fail_body = {
        "error": {
            "message": "Your request was rejected as a result of our safety system.",
            "type": "image_generation_user_error",
            "param": "prompt",
            "code": "moderation_blocked",
        }
    }
    with pytest.raises(UpstreamRejected) as caught:
        await run(provider, generation())
    error = caught.value
    assert (error.status, error.code, error.param) == (400, "moderation_blocked", "prompt")
    assert (
        error.to_body()["error"]["message"] == "Your request was rejected as a result of our safety system."
    )


async def test_wrong_upstream_key_is_a_502_without_the_key(
    http: HttpClients, upstream: FakeOpenAIUpstream
) -> None:
    secret = "sk-wrong-secret-key-987654321"
    provider = make_provider(http, upstream.base_url, secret)
    with pytest.raises(UpstreamFailed) as caught:
        await run(provider, generation())
    error = caught.value
    assert (error.status, error.code) == (502, "upstream_auth_failed")
    assert "main" in error.message
    assert secret not in str(error.to_body()) and secret[-4:] not in error.message


@pytest.mark.parametrize(
    ("status", "error_type", "code", "http_status"),
    [
        (429, RateLimited, "rate_limit_exceeded", 429),
        (500, UpstreamFailed, "upstream_error", 502),
        (503, UpstreamFailed, "upstream_error", 502),
        (404, UpstreamFailed, "upstream_model_not_found", 502),
        (403, UpstreamFailed, "upstream_auth_failed", 502),
        (413, UpstreamRejected, "upstream_rejected", 413),
        (422, UpstreamRejected, "upstream_rejected", 400),
    ],
)
async def test_upstream_statuses_map_to_gateway_errors(
    provider: OpenAIProvider,
    upstream: FakeOpenAIUpstream,
    status: int,
    error_type: type[GatewayError],
    code: str,
    http_status: int,
) -> None:
    upstream.fail_status = status
    with pytest.raises(error_type) as caught:
        await run(provider, generation())
    assert (caught.value.code, caught.value.status) == (code, http_status)


async def test_a_server_error_keeps_the_upstream_message(
    provider: OpenAIProvider, upstream: FakeOpenAIUpstream
) -> None:
    upstream.fail_status, upstream.fail_body = 500, {"error": {"message": "the GPU caught fire"}}
    with pytest.raises(UpstreamFailed) as caught:
        await run(provider, generation())
    assert "the GPU caught fire" in caught.value.message and "500" in caught.value.message


async def test_a_slow_upstream_is_a_timeout(http: HttpClients, upstream: FakeOpenAIUpstream) -> None:
    provider = make_provider(http, upstream.base_url, upstream.api_key, timeout_s=0.2)
    upstream.delay_s = 1
    with pytest.raises(UpstreamTimeout) as caught:
        await run(provider, generation())
    assert caught.value.status == 504


async def test_a_closed_port_is_unreachable(http: HttpClients) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    provider = make_provider(http, f"http://127.0.0.1:{port}/v1", "sk-x")
    with pytest.raises(UpstreamFailed) as caught:
        await run(provider, generation())
    assert (caught.value.code, caught.value.status) == ("upstream_unreachable", 502)


async def test_malformed_json_is_a_bad_response(
    provider: OpenAIProvider, upstream: FakeOpenAIUpstream
) -> None:
    upstream.malformed = True
    with pytest.raises(UpstreamFailed) as caught:
        await run(provider, generation())
    assert caught.value.code == "upstream_bad_response"


async def test_fake_upstream_runs_in_a_thread_for_sync_callers(http: HttpClients) -> None:
    fake = FakeOpenAIUpstream().start_in_thread()
    try:
        provider = make_provider(http, fake.base_url, fake.api_key)
        result = await result_of(provider, generation(size="1024x1024"))
        assert len(result.images) == 1 and len(fake.requests) == 1
    finally:
        fake.stop()


async def test_an_answer_without_data_is_a_bad_response(
    provider: OpenAIProvider, upstream: FakeOpenAIUpstream
) -> None:
    upstream.fail_status, upstream.fail_body = 200, {"created": 1}
    with pytest.raises(UpstreamFailed) as caught:
        await run(provider, generation())
    assert caught.value.code == "upstream_bad_response"


def test_the_fake_speaks_what_the_openai_sdk_expects() -> None:
    # The gateway's end-to-end tests trust this fake, so the official SDK checks its wire format.
    openai = pytest.importorskip("openai")
    with FakeOpenAIUpstream() as fake:
        client = openai.OpenAI(base_url=fake.base_url, api_key=fake.api_key, max_retries=0)
        events = list(client.images.generate(model="m", prompt="p", stream=True, partial_images=2))
        assert [event.type for event in events] == [
            "image_generation.partial_image",
            "image_generation.partial_image",
            "image_generation.completed",
        ]
        edited = client.images.edit(
            model="m", prompt="p", image=[png().data, png().data], output_format="webp"
        )
        assert edited.output_format == "webp" and edited.usage is not None
        assert [f.field for f in fake.requests[-1].images] == ["image[]", "image[]"]


async def test_upstream_out_of_quota_is_the_channels_problem_not_the_clients(
    provider: OpenAIProvider, upstream: FakeOpenAIUpstream
) -> None:
    upstream.fail_status = 429
    upstream.fail_body = {
        "error": {
            "message": "You exceeded your current quota",
            "type": "insufficient_quota",
            "code": "insufficient_quota",
        }
    }

    with pytest.raises(UpstreamFailed) as caught:
        await run(provider, ImageRequest(operation="generate", model=PUBLIC_MODEL, prompt="p"))

    assert caught.value.status == 502 and caught.value.code == "insufficient_quota"
    assert "main" in caught.value.message
