"""The image service: one image request from validation to the response body.

resolve model → check the key → validate → pick a channel → call the provider → deliver each
image in the asked format (transcoding, downloading, hosting) → build ``ImagesResponse``.
Routes, the chat adapter and tests all come through here; it never sees an HTTP request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from imagegate.billing.ledger import insufficient_quota
from imagegate.billing.meter import Billing
from imagegate.billing.money import format_usd
from imagegate.billing.prices import PriceBook
from imagegate.domain import (
    GeneratedImage,
    ImageBlob,
    ImageFormat,
    ImageRequest,
    ImageResult,
    PartialImage,
    Principal,
    ProviderEvent,
)
from imagegate.errors import InvalidRequest, PermissionDenied, UpstreamFailed, UpstreamTimeout
from imagegate.http import HttpClients
from imagegate.media.sizes import check_size
from imagegate.media.transcode import convert_image, measured_size
from imagegate.observability import current_record, new_request_id, note
from imagegate.providers.registry import Catalog, Channel, ModelSpec
from imagegate.services.routing import ChannelRouter
from imagegate.settings import Settings
from imagegate.storage.base import ImageStore


class ImageService:
    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        store: ImageStore,
        http: HttpClients,
        billing: Billing | None = None,
    ) -> None:
        self.catalog = catalog
        self.router = ChannelRouter(catalog)
        self.store = store
        self.http = http
        self.public_url = settings.resolved_public_url
        # Without a ledger nothing is held or charged; costs are still priced for the log.
        self.billing = billing or Billing(PriceBook(_config_prices(settings)))

    # -- validation ---------------------------------------------------------------------------

    def prepare(self, request: ImageRequest, principal: Principal) -> ModelSpec:
        """Check what can be checked before any upstream is called; returns the model's spec."""
        spec = self.catalog.image_model(request.model)
        if not principal.may_use(spec.name):
            raise PermissionDenied(f"This API key may not use the model '{spec.name}'.", param="model")
        if request.n > spec.max_n:
            raise InvalidRequest(
                f"Invalid n {request.n}: the model '{spec.name}' makes at most {spec.max_n} "
                "image(s) per request.",
                param="n",
            )
        check_size(request.size, spec.sizes, model=spec.name)
        if request.background == "transparent" and request.output_format == "jpeg":
            raise InvalidRequest(
                "A transparent background needs output_format 'png' or 'webp'; jpeg has no transparency.",
                param="background",
            )
        return spec

    # -- running ------------------------------------------------------------------------------

    async def events(self, request: ImageRequest, principal: Principal) -> AsyncIterator[ProviderEvent]:
        """The provider's events for a prepared request, from the channel the router chose.

        Billing wraps the upstream call: the request's maximum cost is held first (429
        insufficient_quota when the key is short), the real cost is charged as soon as the
        upstream's result is in hand — so a client that leaves afterwards still pays for what
        was made — and the hold is released on any failure or cancellation before that.
        """
        self.prepare(request, principal)
        # Bridge to the explicit billing API until the pipeline passes the request id itself.
        record = current_record()
        meter = await self.billing.open(request, principal, record.request_id if record else new_request_id())
        try:
            async for channel, event in self.router.run(request):
                if isinstance(event, ImageResult):
                    event = await self._materialise(event, channel)
                    cost = await meter.settle(event)
                    usage = event.usage
                    note(
                        cost_usd=format_usd(cost),
                        input_tokens=usage.input_tokens if usage is not None else None,
                        output_tokens=usage.output_tokens if usage is not None else None,
                    )
                yield event
                del event  # one multi-megabyte event held at a time
        finally:
            await meter.close()

    async def precheck(self, request: ImageRequest, principal: Principal) -> None:
        """Refuse (429 insufficient_quota) a request its key cannot afford, before a stream starts.

        Advisory only: the binding, atomic hold is taken by `events`. Streaming routes call it
        so the common refusal is an HTTP 429 rather than an error event inside a 200 stream.
        """
        ledger = self.billing.ledger
        if ledger is None or not principal.billed or principal.is_admin:
            return
        amount = self.billing.prices.max_cost(request, principal.price_multiplier)
        balance = await ledger.balance(principal.key_id)
        if balance is not None and balance < amount:
            raise insufficient_quota(amount, balance)

    async def create(self, request: ImageRequest, principal: Principal) -> dict[str, Any]:
        """Run a request to completion and return the ``ImagesResponse`` body."""
        result: ImageResult | None = None
        async for event in self.events(request, principal):
            if isinstance(event, ImageResult):
                result = event
        if result is None:
            raise UpstreamFailed("The upstream finished without an image.", code="upstream_bad_response")
        return await self.render_response(request, result)

    async def render_response(
        self, request: ImageRequest, result: ImageResult, *, always_b64: bool = False
    ) -> dict[str, Any]:
        data = [await self.deliver(image, request, always_b64=always_b64) for image in result.images]
        fmt = request.output_format or _format_of(result.images[0]) or result.output_format
        body: dict[str, Any] = {
            "created": result.created or int(time.time()),
            "data": data,
            "background": result.background or _background_echo(request.background),
            "output_format": fmt,
            "quality": result.quality or _quality_echo(request.quality),
            "size": result.size or await self._measure_size(request, result),
        }
        if result.usage is not None:
            body["usage"] = result.usage.to_wire()
        return {key: value for key, value in body.items() if value is not None}

    # -- delivery -----------------------------------------------------------------------------

    async def deliver(
        self, image: GeneratedImage, request: ImageRequest, *, always_b64: bool = False
    ) -> dict[str, Any]:
        """One image as the client asked for it: hosted URL or base64, in the asked format."""
        assert image.blob is not None  # _materialise downloaded every URL
        blob = await self.ensure_format(image.blob, request)
        image.blob = blob  # later readers (size echo) see the delivered bytes
        item: dict[str, Any] = {}
        if request.response_format == "url":
            item["url"] = await self.host(blob)
        if request.response_format == "b64_json" or always_b64:
            item["b64_json"] = blob.b64_payload()
        if image.revised_prompt is not None:
            item["revised_prompt"] = image.revised_prompt
        if image.seed is not None:
            item["seed"] = image.seed
        return item

    async def ensure_format(self, blob: ImageBlob, request: ImageRequest) -> ImageBlob:
        actual = blob.format
        if actual is None:
            raise UpstreamFailed(
                "The upstream returned data that is not an image.", code="upstream_bad_response"
            )
        wanted = request.output_format or actual
        if actual == wanted:
            return blob  # passthrough: base64 stays undecoded
        converted = await asyncio.to_thread(
            lambda: convert_image(
                blob.raw(), wanted, compression=request.output_compression, background=request.background
            )
        )
        return ImageBlob(raw=converted)

    async def host(self, blob: ImageBlob) -> str:
        fmt = blob.format or "png"
        raw = await asyncio.to_thread(blob.raw)
        stored = await self.store.put(raw, fmt)
        return f"{self.public_url}/files/{stored.key}"

    async def _materialise(self, result: ImageResult, channel: Channel) -> ImageResult:
        """Download images an upstream answered with as URLs, so every image has bytes."""
        for image in result.images:
            if image.blob is None:
                if not image.url:
                    raise UpstreamFailed(
                        "The upstream returned an image with no data.", code="upstream_bad_response"
                    )
                image.blob = ImageBlob(raw=await self._download(image.url, channel))
        if not result.images:
            raise UpstreamFailed("The upstream returned no images.", code="upstream_bad_response")
        # Checked before the result is charged: bytes that are not an image are a failed request.
        if any(image.blob is None or image.blob.format is None for image in result.images):
            raise UpstreamFailed(
                "The upstream returned data that is not an image.", code="upstream_bad_response"
            )
        return result

    async def _download(self, url: str, channel: Channel) -> bytes:
        timeout = aiohttp.ClientTimeout(total=channel.config.timeout_s)
        try:
            async with self.http.upstream.get(url, timeout=timeout) as response:
                if response.status != 200:
                    raise UpstreamFailed(
                        f"Downloading the upstream's image failed with HTTP {response.status}.",
                        code="upstream_bad_response",
                    )
                return await response.read()
        except TimeoutError as exc:
            raise UpstreamTimeout("Downloading the upstream's image timed out.") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamFailed(
                "Downloading the upstream's image failed.", code="upstream_unreachable"
            ) from exc

    async def _measure_size(self, request: ImageRequest, result: ImageResult) -> str | None:
        if request.size != "auto":
            return request.size
        blob = result.images[0].blob
        if blob is None:
            return None
        return await measured_size(blob)


def _config_prices(settings: Settings) -> dict[str, dict[str, Any] | None]:
    return {name: model.price for name, model in settings.models.items()}


def _format_of(image: GeneratedImage) -> ImageFormat | None:
    return image.blob.format if image.blob is not None else None


def _background_echo(background: str | None) -> str | None:
    return background if background in ("transparent", "opaque") else None


def _quality_echo(quality: str | None) -> str | None:
    return quality if quality in ("low", "medium", "high") else None


__all__ = ["ImageService", "PartialImage"]
