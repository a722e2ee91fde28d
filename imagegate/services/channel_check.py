"""Checking one channel with a real, tiny request (``imagegate channels test``, the admin API).

The check bypasses routing (it must reach a channel that is resting or disabled) and reports
latency and the result. Its success re-enables a disabled channel and closes its breaker, so an
operator who fixed a key can put the channel back without a restart.

Usage::

    result = await check_channel(router, "openai-main", model="gpt-image-1")
    print(result.ok, result.latency_ms, result.error)
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from imagegate.domain import ImageRequest, ImageResult
from imagegate.errors import GatewayError, InvalidRequest, NotFound, UpstreamFailed
from imagegate.media.sizes import SizeRule, parse_size
from imagegate.providers.registry import Channel
from imagegate.services.routing import ChannelRouter

TEST_PROMPT = "a small red circle on a white background"


@dataclass(slots=True)
class CheckResult:
    channel: str
    model: str
    upstream_model: str
    ok: bool
    latency_ms: float
    images: int = 0
    error: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def find_channel(router: ChannelRouter, name: str) -> Channel:
    for channel in router.catalog.channels:
        if channel.name == name:
            return channel
    known = ", ".join(c.name for c in router.catalog.channels) or "none"
    raise NotFound(f"No channel named '{name}' (channels: {known}).", param="name", code="channel_not_found")


def tiny_request(model: str, sizes: SizeRule) -> ImageRequest:
    """The cheapest request a model accepts: one image, its smallest listed size, low quality."""
    size = "1024x1024"
    if isinstance(sizes, list):
        fixed = [(dims[0] * dims[1], s) for s in sizes if (dims := parse_size(s)) is not None]
        size = min(fixed)[1] if fixed else sizes[0]
    quality = "low" if model.startswith(("gpt-image", "chatgpt-image")) else None
    return ImageRequest(operation="generate", model=model, prompt=TEST_PROMPT, size=size, quality=quality)


async def check_channel(router: ChannelRouter, name: str, model: str | None = None) -> CheckResult:
    channel = find_channel(router, name)
    if model is None:
        if not channel.config.models:
            raise InvalidRequest(f"Channel '{name}' serves no models; pass one to test.", param="model")
        model = channel.config.models[0]
    elif model not in channel.config.models:
        raise InvalidRequest(
            f"Channel '{name}' does not serve the model '{model}' "
            f"(it serves: {', '.join(channel.config.models) or 'none'}).",
            param="model",
        )
    spec = router.catalog.models.get(model)
    request = tiny_request(model, spec.sizes if spec is not None else "any")
    upstream_model = channel.config.upstream_model(model)
    result = CheckResult(name, model, upstream_model, ok=False, latency_ms=0.0)
    started = time.monotonic()
    try:
        final: ImageResult | None = None
        async for event in channel.provider.run(request, upstream_model):
            if isinstance(event, ImageResult):
                final = event
        if final is None or not final.images:
            raise UpstreamFailed("the upstream answered without an image", code="upstream_bad_response")
        result.images = len(final.images)
    except GatewayError as error:
        result.error = error.to_body()["error"]
        router.health.note_error(name, f"{error.code or error.type}: {error.message}")
    else:
        result.ok = True
        router.health.enable(name)
    result.latency_ms = round((time.monotonic() - started) * 1000, 1)
    return result
