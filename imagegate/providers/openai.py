"""Any upstream that speaks OpenAI's Images API: OpenAI itself, Azure-style proxies, other gateways.

"Another OpenAI-compatible host" is a channel with a different ``base_url``, not new code.
Results stay base64 as received (see :class:`~imagegate.domain.ImageBlob`); the gateway
decides later whether to decode, transcode or host them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Literal

import aiohttp

from imagegate.domain import (
    Base64Text,
    GeneratedImage,
    ImageBlob,
    ImageFormat,
    ImageRequest,
    ImageResult,
    PartialImage,
    ProviderEvent,
)
from imagegate.errors import GatewayError, UpstreamFailed, UpstreamRejected
from imagegate.providers.base import Provider
from imagegate.providers.sse import iter_sse
from imagegate.providers.upstream import UpstreamClient, UpstreamError, error_object, parse_usage
from imagegate.providers.upstream_errors import (
    bad_response,
    credentials_rejected,
    json_object,
    model_not_served,
    rate_limited,
)

if TYPE_CHECKING:
    from imagegate.http import HttpClients
    from imagegate.settings import ChannelConfig

DEFAULT_BASE_URL = "https://api.openai.com/v1"
_FORMATS: dict[str, ImageFormat] = {"png": "png", "jpeg": "jpeg", "jpg": "jpeg", "webp": "webp"}
_Kind = Literal["image_generation", "image_edit"]


def openai_client(channel: ChannelConfig, http: HttpClients) -> UpstreamClient:
    """The upstream client of any host that speaks OpenAI's API (bearer key, OpenAI's error envelope)."""
    return UpstreamClient(
        channel,
        http,
        default_base_url=DEFAULT_BASE_URL,
        headers={"Authorization": f"Bearer {channel.api_key}"},
        map_error=openai_error,
    )


class OpenAIProvider(Provider):
    name = "openai"
    can_stream = True
    can_edit = True
    needs_key = True

    def __init__(self, channel: ChannelConfig, http: HttpClients) -> None:
        super().__init__(channel, http)
        self.upstream = openai_client(channel, http)

    async def generate(self, request: ImageRequest, upstream_model: str) -> AsyncIterator[ProviderEvent]:
        body = self._fields(request, upstream_model)
        async for event in self._call("/images/generations", "image_generation", upstream_model, json=body):
            yield event

    async def edit(self, request: ImageRequest, upstream_model: str) -> AsyncIterator[ProviderEvent]:
        fields = self._fields(request, upstream_model)
        if request.input_fidelity is not None:
            fields["input_fidelity"] = request.input_fidelity
        form = aiohttp.FormData()
        for key, value in fields.items():
            form.add_field(key, _form_value(value))
        # OpenAI reads a lone file from `image` and several from `image[]`.
        field_name = "image" if len(request.images) == 1 else "image[]"
        for i, image in enumerate(request.images):
            name, content_type = f"image_{i}.{image.format}", f"image/{image.format}"
            form.add_field(field_name, image.data, filename=name, content_type=content_type)
        if request.mask is not None:
            form.add_field("mask", request.mask.data, filename="mask.png", content_type="image/png")
        async for event in self._call("/images/edits", "image_edit", upstream_model, data=form):
            yield event

    def _fields(self, request: ImageRequest, upstream_model: str) -> dict[str, Any]:
        fields: dict[str, Any] = {"model": upstream_model, "prompt": request.prompt, "n": request.n}
        fields["size"] = request.size
        for key in ("quality", "background", "output_format", "moderation", "user"):
            if (value := getattr(request, key)) is not None:
                fields[key] = value
        # OpenAI rejects a compression below 100 for PNG, and SPEC §2 says it is ignored there.
        if request.output_compression is not None and request.output_format in ("jpeg", "webp"):
            fields["output_compression"] = request.output_compression
        # gpt-image models reject response_format; the gateway converts results itself.
        if self.channel.options.get("send_response_format") or upstream_model.startswith("dall-e"):
            fields["response_format"] = "b64_json"
        if request.stream:
            fields["stream"] = True
            fields["partial_images"] = request.partial_images
        for key, value in request.extra.items():
            fields.setdefault(key, value)  # unknown client fields never override known ones
        return fields

    async def _call(
        self, path: str, kind: _Kind, upstream_model: str, **payload: Any
    ) -> AsyncIterator[ProviderEvent]:
        async with self.upstream.post(path, upstream_model, **payload) as response:
            if response.content_type == "text/event-stream":
                async for event in self._relay(response, kind, upstream_model):
                    yield event
                return
            body = json_object(await response.read())
        # The answer is megabytes of base64, which the images view and the response object keeps
        # a copy of. This frame waits at the yield while the images are decoded and uploaded:
        # holding no name of its own lets the answer go as soon as the images are decoded.
        del response
        result = _result(body, _images(body.get("data")), body.get("created"))
        del body
        yield result

    async def _relay(
        self, response: aiohttp.ClientResponse, kind: _Kind, upstream_model: str
    ) -> AsyncIterator[ProviderEvent]:
        images: list[GeneratedImage] = []
        last: dict[str, Any] = {}
        async for sse in iter_sse(response.content):
            if sse.raw.strip() == b"[DONE]":
                break
            payload = json_object(sse.raw)
            kind_seen = sse.event or str(payload.get("type") or "")
            if kind_seen == "error" or isinstance(payload.get("error"), dict):
                raise self.upstream.stream_failure(payload, upstream_model)
            if kind_seen.endswith(".partial_image"):
                partial = PartialImage(
                    index=int(payload.get("partial_image_index") or 0),
                    image=ImageBlob.from_b64(_b64(payload)),
                    size=_text(payload.get("size")),
                )
                # Each event is megabytes: drop every reference to it once it is passed on, so a
                # stream holds one event at a time, never two (see api/responses.py).
                del sse, payload
                yield partial
                del partial
            elif kind_seen.endswith(".completed"):
                images.append(_image(payload))
                # As with partials: the image alone keeps its base64 (delivery lets it go once
                # decoded); the rest of the event stays for the usage and the echo.
                last = {key: value for key, value in payload.items() if key != "b64_json"}
                del sse, payload
            # Other event types are newer than this code; skipping them keeps the stream going.
        if not images:
            raise bad_response(
                f"channel {self.channel.name}: the upstream's {kind} stream ended without an image"
            )
        yield _result(last, images, last.get("created_at"))


def openai_error(failure: UpstreamError) -> GatewayError:
    """OpenAI's error envelope (an HTTP error answer, or an ``error`` event mid-stream) as our error."""
    if failure.status is None:
        return _stream_error(failure)
    status, channel = failure.status, failure.channel
    error = error_object(failure.body)
    message = str(error.get("message") or f"the upstream answered HTTP {status}")
    if status in (400, 413, 422):
        return UpstreamRejected(
            message,
            code=str(error.get("code") or "upstream_rejected"),
            param=_optional_text(error.get("param")),
            status=413 if status == 413 else 400,
        )
    if status in (401, 403):
        return credentials_rejected(channel)
    if status == 404:
        return model_not_served(channel, failure.upstream_model, message)
    if status == 429 and error.get("code") == "insufficient_quota":
        return _channel_out_of_quota(channel.name)
    if status == 429:
        return rate_limited(failure.headers.get("Retry-After"))
    return UpstreamFailed(f"channel {channel.name}: the upstream answered HTTP {status}: {message}")


def _stream_error(failure: UpstreamError) -> GatewayError:
    payload = failure.body if isinstance(failure.body, dict) else {}
    nested = payload.get("error")
    error: dict[str, Any] = nested if isinstance(nested, dict) else payload
    message = str(error.get("message") or "the upstream reported an error mid-stream")
    code = error.get("code")
    if code == "insufficient_quota":
        return _channel_out_of_quota(failure.channel.name)
    if code == "rate_limit_exceeded":
        return rate_limited()
    if error.get("type") == "invalid_request_error" or code == "moderation_blocked":
        return UpstreamRejected(
            message, code=str(code or "upstream_rejected"), param=_optional_text(error.get("param"))
        )
    return UpstreamFailed(f"channel {failure.channel.name}: {message}")


def _optional_text(value: Any) -> str | None:
    return None if value is None else str(value)


def _channel_out_of_quota(channel: str) -> UpstreamFailed:
    # The gateway's upstream account is out of money: the client's own quota is fine, so this
    # is a 502 (and the router rests the channel), never the client's 429 insufficient_quota.
    return UpstreamFailed(
        f"the upstream account of channel {channel} has no quota left", code="insufficient_quota"
    )


def _b64(item: dict[str, Any]) -> Base64Text:
    value = item.get("b64_json")
    if not isinstance(value, str | memoryview) or not value:
        raise bad_response("the upstream sent an image event without b64_json")
    return value


def _image(item: Any) -> GeneratedImage:
    if not isinstance(item, dict):
        raise bad_response("the upstream sent an image that is not an object")
    revised = item.get("revised_prompt")
    revised = revised if isinstance(revised, str) else None
    if isinstance(item.get("b64_json"), str | memoryview) and item["b64_json"]:
        return GeneratedImage(blob=ImageBlob.from_b64(item["b64_json"]), revised_prompt=revised)
    if isinstance(item.get("url"), str) and item["url"]:
        return GeneratedImage(url=item["url"], revised_prompt=revised)
    raise bad_response("the upstream sent an image with neither b64_json nor url")


def _images(data: Any) -> list[GeneratedImage]:
    if not isinstance(data, list) or not data:
        raise bad_response("the upstream answered without images")
    return [_image(item) for item in data]


def _result(body: dict[str, Any], images: list[GeneratedImage], created: Any) -> ImageResult:
    """The final event; ``body`` is the JSON answer or the last completed stream event."""
    return ImageResult(
        images=images,
        usage=parse_usage(body.get("usage")),
        size=_text(body.get("size")),
        quality=_text(body.get("quality")),
        background=_text(body.get("background")),
        output_format=_FORMATS.get(str(body.get("output_format")).lower()),
        created=created if isinstance(created, int) else None,
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _form_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    return json.dumps(value)  # a structured unknown field still travels as text
