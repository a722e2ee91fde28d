"""The gemini provider against a loopback server that speaks Gemini's ``generateContent``."""

from __future__ import annotations

import asyncio
import io
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from PIL import Image

from imagegate.domain import ImageFormat, ImageRequest, ImageResult, InputImage
from imagegate.errors import (
    GatewayError,
    InvalidRequest,
    RateLimited,
    UpstreamFailed,
    UpstreamRejected,
    UpstreamTimeout,
)
from imagegate.http import HttpClients
from imagegate.providers.gemini import DEFAULT_BASE_URL, GeminiProvider
from imagegate.providers.gemini_sizes import (
    image_config,
    image_size_tier,
    nearest_aspect_ratio,
    supports_image_size,
)
from imagegate.settings import ChannelConfig
from tests.fakes.gemini_upstream import FakeGeminiUpstream

FLASH = "gemini-2.5-flash-image"
PRO = "gemini-3-pro-image-preview"


@pytest.fixture
async def upstream() -> AsyncIterator[FakeGeminiUpstream]:
    async with FakeGeminiUpstream() as fake:
        yield fake


def make_provider(http: HttpClients, base_url: str, api_key: str, **channel: Any) -> GeminiProvider:
    config = ChannelConfig(
        name="banana", provider="gemini", base_url=base_url, api_key=api_key, models=[FLASH, PRO], **channel
    )
    return GeminiProvider(config, http)


@pytest.fixture
def provider(http: HttpClients, upstream: FakeGeminiUpstream) -> GeminiProvider:
    return make_provider(http, upstream.base_url, upstream.api_key)


async def result_of(provider: GeminiProvider, request: ImageRequest) -> ImageResult:
    events = [event async for event in provider.run(request, provider.channel.upstream_model(request.model))]
    assert len(events) == 1
    assert isinstance(events[0], ImageResult)
    return events[0]


async def failure_of(provider: GeminiProvider, request: ImageRequest) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        await result_of(provider, request)
    return caught.value


def generation(model: str = FLASH, **fields: Any) -> ImageRequest:
    return ImageRequest(operation="generate", model=model, prompt="a banana on the moon", **fields)


def picture(width: int, height: int, fmt: ImageFormat = "png", color: str = "red") -> InputImage:
    out = io.BytesIO()
    Image.new("RGBA" if fmt == "png" else "RGB", (width, height), color).save(out, fmt.upper())
    return InputImage(data=out.getvalue(), format=fmt, width=width, height=height, has_alpha=fmt == "png")


def dimensions(result: ImageResult, index: int = 0) -> tuple[int, int]:
    blob = result.images[index].blob
    assert blob is not None
    with Image.open(io.BytesIO(blob.raw())) as image:
        return image.size


# -- sizes ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("width", "height", "ratio"),
    [
        (1024, 1024, "1:1"),
        (1536, 1024, "3:2"),
        (1024, 1536, "2:3"),
        (1792, 1024, "16:9"),
        (1024, 1792, "9:16"),
        (2560, 1080, "21:9"),
        (1280, 1024, "5:4"),
        (1600, 1200, "4:3"),
        (4000, 1000, "21:9"),  # beyond the widest ratio: the widest
    ],
)
def test_nearest_aspect_ratio(width: int, height: int, ratio: str) -> None:
    assert nearest_aspect_ratio(width, height) == ratio


@pytest.mark.parametrize(
    ("width", "height", "tier"),
    [(1024, 1024, "1K"), (1536, 1024, "1K"), (1584, 672, "1K"), (2048, 2048, "2K"), (3840, 2160, "4K")],
)
def test_image_size_tier_follows_the_long_side(width: int, height: int, tier: str) -> None:
    assert image_size_tier(width, height) == tier


def test_image_config_sends_nothing_for_auto_and_image_size_only_when_asked() -> None:
    assert image_config("auto", with_image_size=True) == {}
    assert image_config("1536x1024", with_image_size=False) == {"aspectRatio": "3:2"}
    assert image_config("2048x1152", with_image_size=True) == {"aspectRatio": "16:9", "imageSize": "2K"}


def test_only_pro_and_3x_models_take_image_size() -> None:
    assert not supports_image_size(FLASH)
    assert supports_image_size(PRO)
    assert supports_image_size("gemini-3.1-flash-image-preview")


# -- generation -----------------------------------------------------------------------------------


async def test_generation_speaks_generate_content(
    provider: GeminiProvider, upstream: FakeGeminiUpstream
) -> None:
    result = await result_of(provider, generation())

    sent = upstream.requests[-1]
    assert sent.path == f"/v1beta/models/{FLASH}:generateContent"
    assert sent.headers["x-goog-api-key"] == upstream.api_key
    assert sent.query == {}  # the key never travels in the URL
    assert sent.json == {
        "contents": [{"role": "user", "parts": [{"text": "a banana on the moon"}]}],
        "generationConfig": {"responseModalities": ["TEXT", "IMAGE"]},
    }
    assert len(result.images) == 1
    assert dimensions(result) == (1024, 1024)
    assert result.size == "1024x1024"
    assert result.output_format == "png"


async def test_usage_metadata_becomes_image_usage(provider: GeminiProvider) -> None:
    result = await result_of(provider, generation())
    assert result.usage is not None
    # The fake counts one token per prompt word and 1290 per flash image, as Google bills.
    assert (result.usage.input_tokens, result.usage.text_tokens, result.usage.image_tokens) == (5, 5, 0)
    assert result.usage.output_tokens == 1290
    assert result.usage.total_tokens == 1295


@pytest.mark.parametrize(
    ("size", "ratio", "pixels"),
    [
        ("1536x1024", "3:2", (1248, 832)),
        ("1024x1536", "2:3", (832, 1248)),
        ("1792x1024", "16:9", (1344, 768)),
        ("2560x1080", "21:9", (1536, 672)),
        ("1024x1024", "1:1", (1024, 1024)),
    ],
)
async def test_flash_size_maps_to_the_nearest_ratio_and_reports_the_real_pixels(
    provider: GeminiProvider, upstream: FakeGeminiUpstream, size: str, ratio: str, pixels: tuple[int, int]
) -> None:
    result = await result_of(provider, generation(size=size))
    assert upstream.requests[-1].image_config == {"aspectRatio": ratio}  # flash takes no imageSize
    assert dimensions(result) == pixels
    assert result.size == "{}x{}".format(*pixels)


@pytest.mark.parametrize(
    ("size", "config", "pixels"),
    [
        ("1536x1024", {"aspectRatio": "3:2", "imageSize": "1K"}, (1264, 848)),
        ("2560x1440", {"aspectRatio": "16:9", "imageSize": "2K"}, (2752, 1536)),
    ],
)
async def test_pro_models_also_get_an_image_size(
    provider: GeminiProvider,
    upstream: FakeGeminiUpstream,
    size: str,
    config: dict[str, str],
    pixels: tuple[int, int],
) -> None:
    result = await result_of(provider, generation(PRO, size=size))
    assert upstream.requests[-1].image_config == config
    assert result.size == "{}x{}".format(*pixels)
    assert result.usage is not None
    assert result.usage.output_tokens == 1120


async def test_image_sizes_option_turns_image_size_off(
    http: HttpClients, upstream: FakeGeminiUpstream
) -> None:
    provider = make_provider(http, upstream.base_url, upstream.api_key, options={"image_sizes": False})
    await result_of(provider, generation(PRO, size="2048x2048"))
    assert upstream.requests[-1].image_config == {"aspectRatio": "1:1"}


async def test_n_runs_concurrent_calls_and_sums_usage(
    provider: GeminiProvider, upstream: FakeGeminiUpstream
) -> None:
    upstream.gate = asyncio.Event()
    task = asyncio.create_task(result_of(provider, generation(n=3, size="1536x1024")))
    await asyncio.wait_for(upstream.wait_in_flight(3), 30)  # all three wait upstream at once
    upstream.gate.set()
    result = await asyncio.wait_for(task, 30)
    assert len(upstream.requests) == 3
    assert len(result.images) == 3
    assert all(dimensions(result, i) == (1248, 832) for i in range(3))
    assert result.usage is not None
    assert (result.usage.input_tokens, result.usage.output_tokens) == (15, 3 * 1290)


async def test_thought_images_are_not_results(provider: GeminiProvider, upstream: FakeGeminiUpstream) -> None:
    upstream.thought_image = True
    upstream.model_text = "Here is your banana."
    result = await result_of(provider, generation(size="1536x1024"))
    assert len(result.images) == 1
    assert dimensions(result) == (1248, 832)


async def test_jpeg_bytes_are_kept_as_they_came(
    provider: GeminiProvider, upstream: FakeGeminiUpstream
) -> None:
    upstream.image_format = "jpeg"
    result = await result_of(provider, generation())
    assert result.output_format == "jpeg"
    blob = result.images[0].blob
    assert blob is not None
    assert blob.raw()[:3] == b"\xff\xd8\xff"


def test_default_base_url(http: HttpClients) -> None:
    provider = make_provider(http, "", "AIza-anything")
    assert (
        provider.upstream.base_url == DEFAULT_BASE_URL == "https://generativelanguage.googleapis.com/v1beta"
    )


# -- edits ----------------------------------------------------------------------------------------


def edit(*images: InputImage, mask: InputImage | None = None, **fields: Any) -> ImageRequest:
    return ImageRequest(
        operation="edit", model=FLASH, prompt="put them together", images=list(images), mask=mask, **fields
    )


async def test_edit_sends_every_image_in_order_after_the_prompt(
    provider: GeminiProvider, upstream: FakeGeminiUpstream
) -> None:
    inputs = [
        picture(300, 200, "png", "red"),
        picture(64, 64, "jpeg", "green"),
        picture(80, 40, "webp", "blue"),
    ]
    result = await result_of(provider, edit(*inputs))

    sent = upstream.requests[-1]
    assert list(sent.parts[0]) == ["text"]
    assert sent.prompt == "put them together"
    assert sent.images == [
        ("image/png", inputs[0].data),
        ("image/jpeg", inputs[1].data),
        ("image/webp", inputs[2].data),
    ]
    assert sent.image_config is None  # auto: Gemini keeps the first image's shape
    assert result.size == "1248x832"
    assert result.usage is not None
    assert result.usage.image_tokens == 3 * 258
    assert result.usage.input_tokens == result.usage.text_tokens + 3 * 258


async def test_a_mask_is_refused_by_default(provider: GeminiProvider, upstream: FakeGeminiUpstream) -> None:
    error = await failure_of(provider, edit(picture(64, 64), mask=picture(64, 64)))
    assert isinstance(error, InvalidRequest)
    assert error.param == "mask"
    assert error.status == 400
    assert "mask" in error.message
    assert upstream.requests == []


async def test_mask_as_image_sends_it_last_and_says_what_it_is(
    http: HttpClients, upstream: FakeGeminiUpstream
) -> None:
    provider = make_provider(http, upstream.base_url, upstream.api_key, options={"mask_as_image": True})
    image, mask = picture(64, 64, color="red"), picture(64, 64, color="white")
    await result_of(provider, edit(image, mask=mask))
    sent = upstream.requests[-1]
    assert [data for _, data in sent.images] == [image.data, mask.data]
    assert sent.prompt.startswith("put them together")
    assert "mask" in sent.prompt and "transparent" in sent.prompt


# -- refusals -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reason",
    ["IMAGE_SAFETY", "SAFETY", "PROHIBITED_CONTENT", "IMAGE_PROHIBITED_CONTENT", "BLOCKLIST", "SPII"],
)
async def test_safety_finish_reasons_are_moderation_blocks(
    provider: GeminiProvider, upstream: FakeGeminiUpstream, reason: str
) -> None:
    upstream.finish_reason = reason
    error = await failure_of(provider, generation())
    assert isinstance(error, UpstreamRejected)
    assert (error.status, error.code, error.param) == (400, "moderation_blocked", "prompt")
    assert reason in error.message


@pytest.mark.parametrize(
    "reason", ["NO_IMAGE", "IMAGE_OTHER", "RECITATION", "IMAGE_RECITATION", "OTHER", "MAX_TOKENS"]
)
async def test_other_finish_reasons_without_an_image_are_no_image(
    provider: GeminiProvider, upstream: FakeGeminiUpstream, reason: str
) -> None:
    upstream.finish_reason = reason
    upstream.model_text = "I can only describe bananas, not draw them."
    error = await failure_of(provider, generation())
    assert isinstance(error, UpstreamRejected)
    assert (error.status, error.code) == (400, "no_image")
    assert reason in error.message
    assert "I can only describe bananas" in error.message


async def test_a_text_only_answer_is_no_image(provider: GeminiProvider, upstream: FakeGeminiUpstream) -> None:
    upstream.text_only = True
    upstream.model_text = "Which banana would you like?"
    error = await failure_of(provider, generation())
    assert (error.status, error.code) == (400, "no_image")
    assert "Which banana would you like?" in error.message


async def test_prompt_feedback_block_is_a_moderation_block(
    provider: GeminiProvider, upstream: FakeGeminiUpstream
) -> None:
    upstream.block_reason = "PROHIBITED_CONTENT"
    error = await failure_of(provider, generation())
    assert isinstance(error, UpstreamRejected)
    assert (error.status, error.code, error.param) == (400, "moderation_blocked", "prompt")
    assert "PROHIBITED_CONTENT" in error.message


# -- upstream failures ----------------------------------------------------------------------------


async def test_a_wrong_key_is_the_gateways_failure(http: HttpClients, upstream: FakeGeminiUpstream) -> None:
    provider = make_provider(http, upstream.base_url, "AIza-wrong-key-42")
    error = await failure_of(provider, generation())
    # Google says 400 INVALID_ARGUMENT (API_KEY_INVALID); the client must not see a 400 of its own.
    assert isinstance(error, UpstreamFailed)
    assert (error.status, error.code) == (502, "upstream_auth_failed")
    assert "AIza-wrong-key-42" not in str(error.to_body())


async def test_a_missing_key_is_the_gateways_failure(http: HttpClients, upstream: FakeGeminiUpstream) -> None:
    error = await failure_of(make_provider(http, upstream.base_url, ""), generation())
    assert (error.status, error.code) == (502, "upstream_auth_failed")


@pytest.mark.parametrize("status", [401, 403])
async def test_auth_statuses(provider: GeminiProvider, upstream: FakeGeminiUpstream, status: int) -> None:
    upstream.fail_status = status
    error = await failure_of(provider, generation())
    assert (error.status, error.code) == (502, "upstream_auth_failed")
    assert upstream.api_key not in str(error.to_body())


async def test_an_unknown_model_is_upstream_model_not_found(provider: GeminiProvider) -> None:
    error = await failure_of(provider, generation("gemini-9-ultra-image"))
    assert (error.status, error.code) == (502, "upstream_model_not_found")
    assert "gemini-9-ultra-image" in error.message


async def test_invalid_argument_passes_googles_message(
    provider: GeminiProvider, upstream: FakeGeminiUpstream
) -> None:
    upstream.fail_status = 400
    upstream.fail_message = "Request contains an invalid argument."
    error = await failure_of(provider, generation())
    assert isinstance(error, UpstreamRejected)
    assert error.status == 400
    assert error.message == "Request contains an invalid argument."


async def test_failed_precondition_is_the_channels_problem(
    provider: GeminiProvider, upstream: FakeGeminiUpstream
) -> None:
    upstream.fail_status = 400
    upstream.fail_google_status = "FAILED_PRECONDITION"
    upstream.fail_message = "User location is not supported for the API use."
    error = await failure_of(provider, generation())
    assert isinstance(error, UpstreamFailed)
    assert error.status == 502
    assert "User location is not supported" in error.message


async def test_resource_exhausted_is_rate_limited_with_retry_after(
    provider: GeminiProvider, upstream: FakeGeminiUpstream
) -> None:
    upstream.fail_status = 429
    upstream.retry_delay = "36.5s"
    error = await failure_of(provider, generation())
    assert isinstance(error, RateLimited)
    assert error.status == 429
    assert error.headers == {"Retry-After": "37"}


@pytest.mark.parametrize("status", [500, 503])
async def test_server_errors_are_upstream_failures(
    provider: GeminiProvider, upstream: FakeGeminiUpstream, status: int
) -> None:
    upstream.fail_status = status
    error = await failure_of(provider, generation())
    assert isinstance(error, UpstreamFailed)
    assert (error.status, error.code) == (502, "upstream_error")


async def test_timeout(http: HttpClients, upstream: FakeGeminiUpstream) -> None:
    provider = make_provider(http, upstream.base_url, upstream.api_key, timeout_s=0.2)
    upstream.delay_s = 5
    error = await failure_of(provider, generation())
    assert isinstance(error, UpstreamTimeout)
    assert error.status == 504


async def test_unreachable(http: HttpClients) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    error = await failure_of(make_provider(http, f"http://127.0.0.1:{port}/v1beta", "AIza-x"), generation())
    assert (error.status, error.code) == (502, "upstream_unreachable")


async def test_malformed_answer(provider: GeminiProvider, upstream: FakeGeminiUpstream) -> None:
    upstream.malformed = True
    error = await failure_of(provider, generation())
    assert (error.status, error.code) == (502, "upstream_bad_response")
