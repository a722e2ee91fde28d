"""The generation pipeline's rules, through FakeProvider: no HTTP, a real ledger and a real store.

What is held, charged or released, what each event carries, and what a failure leaves behind,
on SQLite and PostgreSQL (the module-scoped ``database_url`` of tests/db).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from imagegate.billing.ledger import Ledger
from imagegate.billing.meter import Billing
from imagegate.billing.prices import PriceBook
from imagegate.db.keys import KeyStore
from imagegate.domain import (
    Accepted,
    Generated,
    GeneratedImage,
    ImageBlob,
    ImageRequest,
    ImageResult,
    ImageSource,
    PartialImage,
    Principal,
    Usage,
)
from imagegate.errors import GatewayError, InvalidRequest, PermissionDenied, UpstreamFailed
from imagegate.http import HttpClients
from imagegate.observability import RequestRecord
from imagegate.providers.registry import Catalog
from imagegate.services.auth import principal_for
from imagegate.services.delivery import Delivery
from imagegate.services.generation import GenerationPipeline
from imagegate.services.inputs import InputLoader
from imagegate.services.routing import ChannelRouter
from imagegate.settings import load_settings
from imagegate.storage.disk import DiskStore
from tests.conftest import image_bytes
from tests.db.conftest import database_url, engine
from tests.fakes.provider import FakeProvider, result, tiny_png

__all__ = ["database_url", "engine"]

PRICE = 10_000  # micro-USD per image
QUOTA = 1_000_000


@dataclass
class Harness:
    pipeline: GenerationPipeline
    provider: FakeProvider
    ledger: Ledger
    principal: Principal
    key_id: str

    async def run(self, request: ImageRequest, request_id: str = "req_1") -> tuple[list[Any], RequestRecord]:
        record = RequestRecord(request_id=request_id, method="POST", endpoint="/v1/images/generations")
        events = [event async for event in self.pipeline.run(request, self.principal, record)]
        return events, record

    async def money(self) -> tuple[int | None, int]:
        return await self.ledger.balance(self.key_id), await self.ledger.total(self.key_id)

    async def kinds(self, request_id: str = "req_1") -> list[str]:
        return [entry.kind for entry in await self.ledger.entries(request_id=request_id)]


@pytest.fixture
async def harness(engine: AsyncEngine, tmp_path: Path) -> AsyncIterator[Harness]:
    settings = load_settings(
        demo=False,
        data_dir=tmp_path,
        channels=[
            {"name": "fake", "provider": "fake", "models": ["m"]},
            {"name": "generate-only", "provider": "fake-generate-only", "models": ["g"]},
        ],
        models={
            "m": {"sizes": "any", "max_n": 4, "price": {"per_image": {"default": PRICE / 1e6}}},
            "g": {"sizes": "any", "price": {"per_image": {"default": PRICE / 1e6}}},
        },
    )
    http = HttpClients.create(settings)
    catalog = Catalog(settings, http)
    provider = catalog.channels_for("m")[0].provider
    assert isinstance(provider, FakeProvider)
    store = DiskStore(tmp_path / "images")
    ledger = Ledger(engine)
    billing = Billing(PriceBook({name: model.price for name, model in settings.models.items()}), ledger)
    pipeline = GenerationPipeline(
        catalog,
        ChannelRouter.from_settings(catalog, settings),
        InputLoader(settings, http.fetcher, store),
        billing,
        Delivery(store, http, settings.resolved_public_url),
    )
    key, _ = await KeyStore(engine).create("k", quota_usd="1")
    yield Harness(pipeline, provider, ledger, principal_for(key), key.id)
    await billing.drain()
    await catalog.aclose()
    await http.aclose()


def ask(**fields: Any) -> ImageRequest:
    return ImageRequest(**{"operation": "generate", "model": "m", "prompt": "a fox", **fields})


async def test_a_success_yields_accepted_then_generated_and_charges_what_was_made(harness: Harness) -> None:
    harness.provider.enqueue(result(2, size="64x32", usage=Usage(input_tokens=3, output_tokens=5)))

    events, record = await harness.run(ask(n=2, response_format="b64_json"))

    assert [type(event) for event in events] == [Accepted, Generated]
    generated = events[-1]
    assert isinstance(generated, Generated)
    assert (generated.size, generated.output_format, len(generated.images)) == ("64x32", "png", 2)
    assert all(image.url is None and image.blob.format == "png" for image in generated.images)
    assert generated.cost_micros == 2 * PRICE
    assert await harness.kinds() == ["hold", "release", "charge"]
    assert await harness.money() == (QUOTA - 2 * PRICE,) * 2
    assert (record.model, record.channel, record.cost_usd, record.size) == ("m", "fake", "0.020000", "64x32")
    assert record.attempts[0]["channel"] == "fake" and record.attempts[0]["error"] is None


async def test_url_mode_stores_each_image_and_hands_out_its_url(harness: Harness) -> None:
    events, _ = await harness.run(ask())
    generated = events[-1]
    assert isinstance(generated, Generated)
    (image,) = generated.images
    assert image.url is not None and "/files/" in image.url
    assert image.url.endswith(".png")
    assert image.blob is None  # stored: its bytes are not held while the answer is written
    events, _ = await harness.run(ask(stream=True), request_id="req_2")
    streamed = events[-1]
    assert isinstance(streamed, Generated)
    assert streamed.images[0].url is not None and streamed.images[0].blob is not None  # events carry it


async def test_partials_pass_through_in_order_before_the_result(harness: Harness) -> None:
    harness.provider.enqueue(
        PartialImage(0, ImageBlob(raw=tiny_png())), PartialImage(1, ImageBlob(raw=tiny_png())), result()
    )
    events, _ = await harness.run(ask(stream=True, partial_images=2))
    assert [type(event).__name__ for event in events] == [
        "Accepted",
        "PartialImage",
        "PartialImage",
        "Generated",
    ]


@pytest.mark.parametrize(
    "script",
    [
        [UpstreamFailed("boom", code="upstream_error")],
        [PartialImage(0, ImageBlob(raw=tiny_png())), UpstreamFailed("mid-stream", code="upstream_error")],
        [ImageResult(images=[GeneratedImage(blob=ImageBlob(raw=b"<html>not an image</html>"))])],
    ],
    ids=["fails-at-once", "fails-after-a-partial", "not-an-image"],
)
async def test_a_failure_releases_the_hold_and_is_recorded(harness: Harness, script: list[Any]) -> None:
    harness.provider.enqueue(*script)
    record = RequestRecord(request_id="req_1", method="POST", endpoint="/v1/images/generations")
    seen: list[Any] = []
    with pytest.raises(GatewayError) as caught:
        async for event in harness.pipeline.run(ask(), harness.principal, record):
            seen.append(event)
    assert caught.value.status == 502
    assert isinstance(seen[0], Accepted) and not any(isinstance(e, Generated) for e in seen)
    assert await harness.kinds() == ["hold", "release"]
    assert await harness.money() == (QUOTA, QUOTA)
    assert record.error_code == caught.value.code and record.cost_usd is None


async def test_a_client_that_leaves_before_the_result_pays_nothing(harness: Harness) -> None:
    harness.provider.enqueue(PartialImage(0, ImageBlob(raw=tiny_png())), result())
    record = RequestRecord(request_id="req_1", method="POST", endpoint="/v1/images/generations")
    events = harness.pipeline.run(ask(stream=True, partial_images=1), harness.principal, record)
    assert isinstance(await anext(events), Accepted)
    assert isinstance(await anext(events), PartialImage)
    await events.aclose()  # the client went away
    assert await harness.kinds() == ["hold", "release"]
    assert await harness.money() == (QUOTA, QUOTA)


async def test_refusals_from_the_request_alone_hold_nothing_and_call_no_provider(harness: Harness) -> None:
    narrow = Principal(key_id=harness.key_id, name="k", models=("other",), billed=True)
    refusals: list[tuple[ImageRequest, Principal, type[GatewayError]]] = [
        (ask(n=5), harness.principal, InvalidRequest),  # over the model's max_n
        (ask(background="transparent", output_format="jpeg"), harness.principal, InvalidRequest),
        (ask(), narrow, PermissionDenied),
    ]
    for request, principal, error in refusals:
        record = RequestRecord(request_id="req_1", method="POST", endpoint="/v1/images/generations")
        with pytest.raises(error):
            await anext(harness.pipeline.run(request, principal, record))
    assert harness.provider.calls == []
    assert await harness.kinds() == []


async def test_a_request_the_key_cannot_afford_is_refused_before_its_images_are_read(
    harness: Harness, engine: AsyncEngine
) -> None:
    key, _ = await KeyStore(engine).create("poor", quota_usd="0.001")
    broke = principal_for(key)
    # The source would be a 400 if read: being refused for quota first proves it never was.
    request = ask(operation="edit", sources=[ImageSource(param="image", data=b"not an image")])
    record = RequestRecord(request_id="req_1", method="POST", endpoint="/v1/images/edits")
    with pytest.raises(GatewayError) as caught:
        await anext(harness.pipeline.run(request, broke, record))
    assert (caught.value.status, caught.value.code) == (429, "insufficient_quota")


async def test_an_unreadable_input_releases_the_hold(harness: Harness) -> None:
    request = ask(operation="edit", sources=[ImageSource(param="image", data=b"not an image")])
    with pytest.raises(InvalidRequest):
        await harness.run(request)
    assert await harness.kinds() == ["hold", "release"]


async def test_an_edit_never_goes_to_a_channel_that_cannot_edit(harness: Harness) -> None:
    request = ask(model="g", operation="edit", sources=[ImageSource(param="image", data=image_bytes())])
    with pytest.raises(InvalidRequest) as caught:
        await harness.run(request)
    assert caught.value.param == "model"
    assert await harness.money() == (QUOTA, QUOTA)


async def test_what_was_asked_is_echoed_when_the_provider_does_not_say(harness: Harness) -> None:
    harness.provider.enqueue(result(quality=None, background=None))
    events, _ = await harness.run(ask(quality="high", background="opaque", response_format="b64_json"))
    generated = events[-1]
    assert isinstance(generated, Generated)
    assert (generated.quality, generated.background) == ("high", "opaque")
    harness.provider.enqueue(result(quality="low", background="transparent"))
    events, _ = await harness.run(ask(quality="high", response_format="b64_json"), request_id="req_2")
    generated = events[-1]
    assert isinstance(generated, Generated)
    assert (generated.quality, generated.background) == ("low", "transparent")  # the provider's word
