"""The generation pipeline: one image request from its checks to its delivered, paid-for images.

Every way into a generation — JSON, SSE, chat (streamed or not), async tasks — runs the same
steps here and renders the events it yields::

    check the model, access, n, size, options      (400 / 403 / 404)
    hold the request's maximum cost                (429 insufficient_quota)
    read, measure and decode the input images      (400 / 413)            -> Accepted
    route to a channel and run its provider        (502 / 503 / 504)      -> PartialImage…
    check, convert and store every image           (502 / 503: free)
    charge what was made                                                  -> Generated

Nothing is charged unless the images were delivered: any failure or cancellation before that
releases the hold. Once the images are stored, finishing the charge is shielded from the client
going away, so what was made is paid for. The request's facts (model, channel, attempts, cost,
error) are written into its :class:`~imagegate.observability.RequestRecord`.

    pipeline = GenerationPipeline(catalog, router, inputs, billing, delivery)
    async for event in pipeline.run(request, principal, record):
        ...
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

from imagegate.billing.meter import Billing, Meter
from imagegate.db.new_rows import NewRow
from imagegate.domain import (
    Accepted,
    Generated,
    GenerationEvent,
    ImageRequest,
    ImageResult,
    PartialImage,
    Principal,
)
from imagegate.errors import GatewayError, InvalidRequest, PermissionDenied, UpstreamFailed
from imagegate.media.sizes import SizeRule, check_size, nearest_size
from imagegate.money import format_usd
from imagegate.observability import RequestDetail, RequestRecord
from imagegate.providers.registry import Catalog, Channel, ModelSpec
from imagegate.services.delivery import Delivery
from imagegate.services.inputs import InputLoader
from imagegate.services.routing import CatalogSource, ChannelRouter

logger = logging.getLogger("imagegate.generation")


class GenerationPipeline:
    def __init__(
        self,
        catalogs: CatalogSource,
        router: ChannelRouter,
        inputs: InputLoader,
        billing: Billing,
        delivery: Delivery,
    ) -> None:
        self.catalogs = catalogs
        self.router = router
        self.inputs = inputs
        self.billing = billing
        self.delivery = delivery

    @property
    def catalog(self) -> Catalog:
        """The catalog in force now (channels may change between two requests, never within one)."""
        return self.catalogs.current

    # -- checks -------------------------------------------------------------------------------

    def check(self, request: ImageRequest, principal: Principal) -> ModelSpec:
        """Everything that can be refused from the request alone; returns the model's spec."""
        spec = self.catalog.image_model(request.model, may_use=principal.may_use)
        if not principal.may_use(request.public_model):
            raise PermissionDenied(
                f"This API key may not use the model '{request.public_model}'.", param="model"
            )
        if request.n > spec.max_n:
            raise InvalidRequest(
                f"Invalid n {request.n}: the model '{spec.name}' makes at most {spec.max_n} "
                "image(s) per request.",
                param="n",
            )
        request.size = fit_size(request.size, spec.sizes, spec.size_policy, model=spec.name)
        if request.background == "transparent" and request.output_format == "jpeg":
            raise InvalidRequest(
                "A transparent background needs output_format 'png' or 'webp'; jpeg has no transparency.",
                param="background",
            )
        self.inputs.check_count(request)
        return spec

    async def admit(
        self,
        request: ImageRequest,
        principal: Principal,
        request_id: str,
        *,
        endpoint: str | None = None,
        with_hold: Callable[[int], tuple[NewRow, ...]] | None = None,
    ) -> Meter:
        """Check the request and hold its maximum cost: what an async task does at submit.

        The returned meter is handed to :meth:`run` later (``meter=``), which then skips both.
        ``endpoint`` is what the request log says if this process dies while the hold is open;
        ``with_hold``: rows committed with the hold (`Billing.open`).
        """
        self.check(request, principal)
        return await self.billing.open(request, principal, request_id, endpoint=endpoint, with_hold=with_hold)

    # -- running ------------------------------------------------------------------------------

    async def run(
        self,
        request: ImageRequest,
        principal: Principal,
        record: RequestRecord,
        *,
        hosted: bool | None = None,
        keep_bytes: bool | None = None,
        meter: Meter | None = None,
    ) -> AsyncIterator[GenerationEvent]:
        """The request's events: Accepted, then its partial images, then Generated.

        Errors are raised as :class:`~imagegate.errors.GatewayError`; one raised before Accepted
        means nothing was started. ``hosted`` stores the images and gives them URLs (default:
        when the client asked for URLs). ``keep_bytes`` keeps hosted images' bytes in Generated
        (default: for streams and base64 answers, whose events carry them). ``meter`` is the hold
        :meth:`admit` took, for a request checked and held earlier (an async task); the hold is
        settled or released here either way.
        """
        describe(record, request)
        try:
            if meter is None:
                meter = await self.admit(request, principal, record.request_id, endpoint=record.endpoint)
            finishing: asyncio.Future[Generated] | None = None
            try:
                await self.inputs.load(request)
                yield Accepted(model=request.model)
                channel: Channel | None = None
                result: ImageResult | None = None
                async for source, event in self.router.run(request, record):
                    if isinstance(event, ImageResult):
                        channel, result = source, event
                    else:
                        yield event
                    del event  # one multi-megabyte event held at a time
                if channel is None or result is None:
                    raise UpstreamFailed(
                        "The upstream finished without an image.", code="upstream_bad_response"
                    )
                wants_urls = request.response_format == "url" if hosted is None else hosted
                if keep_bytes is None:
                    keep_bytes = request.stream or request.response_format == "b64_json"
                finishing = asyncio.create_task(
                    self._finish(request, result, channel, meter, record, wants_urls, keep_bytes)
                )
                del result
                yield await asyncio.shield(finishing)
            finally:
                if finishing is not None and not finishing.done():
                    # The client left while its images were being stored: they are still
                    # delivered and charged; the meter closes once that is over.
                    _close_when_done(finishing, meter)
                else:
                    await meter.close()
        except GatewayError as error:
            record.failed(error.type, error.code, error.message)
            raise

    async def _finish(
        self,
        request: ImageRequest,
        result: ImageResult,
        channel: Channel,
        meter: Meter,
        record: RequestRecord,
        hosted: bool,
        keep_bytes: bool,
    ) -> Generated:
        """Deliver the images, then charge for them. Runs to its end even if the client leaves."""
        generated = await self.delivery.deliver(
            request, result, channel, hosted=hosted, keep_bytes=keep_bytes
        )
        generated.cost_micros = await meter.settle(result)
        record.size = generated.size or record.size
        record.cost_usd = format_usd(generated.cost_micros)
        if record.detail is not None:
            record.detail.outputs = [
                {"url": image.url, "revised_prompt": image.revised_prompt}
                for image in generated.images
                if image.url is not None
            ]
        if result.usage is not None:
            record.input_tokens = result.usage.input_tokens
            record.output_tokens = result.usage.output_tokens
        return generated

    async def generate(
        self,
        request: ImageRequest,
        principal: Principal,
        record: RequestRecord,
        *,
        hosted: bool | None = None,
    ) -> Generated:
        """Run a request to its end and return only the final event."""
        final: Generated | None = None
        async for event in self.run(request, principal, record, hosted=hosted):
            if isinstance(event, Generated):
                final = event
        assert final is not None  # run() raises rather than end without one
        return final


def fit_size(size: str, sizes: SizeRule, policy: str, *, model: str, param: str = "size") -> str:
    """The size to make: ``size`` when ``sizes`` has it; else, under the ``nearest`` policy, the
    nearest size it has (logged); otherwise a 400 that lists what is allowed."""
    if policy == "nearest":
        nearest = nearest_size(size, sizes)
        if nearest != size:
            logger.info("size %s replaced by %s for model %s (size_policy nearest)", size, nearest, model)
            size = nearest
    return check_size(size, sizes, model=model, param=param)


_background: set[asyncio.Task[None]] = set()


def _close_when_done(finishing: asyncio.Future[Generated], meter: Meter) -> None:
    async def close() -> None:
        await asyncio.wait([finishing])
        if not finishing.cancelled():
            finishing.exception()  # retrieved, so an error here is not reported as lost
        await meter.close()

    task = asyncio.ensure_future(close())
    _background.add(task)
    task.add_done_callback(_background.discard)


_DETAIL_PARAMS = ("size", "quality", "n", "background", "output_format", "output_compression")


def describe(record: RequestRecord, request: ImageRequest) -> None:
    """What the request log keeps of an image request (and, beside it, its prompt and links)."""
    params = {name: getattr(request, name) for name in _DETAIL_PARAMS if getattr(request, name) is not None}
    sources = [("image", source) for source in request.sources]
    if request.mask_source is not None:
        sources.append(("mask", request.mask_source))
    inputs = [
        {"role": role, "url": source.url}
        for role, source in sources
        if source.url is not None and source.url.startswith(("http://", "https://"))
    ]
    record.detail = RequestDetail(prompt=request.prompt, params=params, inputs=inputs)
    record.model = request.public_model
    if record.stream is None:  # a chat stream is a stream, though its image request is not
        record.stream = request.stream
    record.n = request.n
    record.size = request.size
    record.quality = request.quality
    record.user = request.user


__all__ = ["GenerationPipeline", "PartialImage", "describe", "fit_size"]
