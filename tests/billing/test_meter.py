"""A request's billing on SQLite and PostgreSQL: a result that cannot be priced never keeps money held."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from imagegate.billing.ledger import Ledger
from imagegate.billing.meter import Billing
from imagegate.billing.prices import PriceBook
from imagegate.db.keys import KeyStore
from imagegate.db.tables import OpenHoldRow
from imagegate.domain import GeneratedImage, ImageRequest, ImageResult, Principal, Usage
from imagegate.errors import UpstreamFailed

# USD per 1M tokens: 1000 output tokens cost $0.03.
PRICES = {"gpt-image-2": {"per_token": {"text_in": 5, "image_in": 8, "image_out": 30}}}
REQUEST = ImageRequest(
    operation="generate", model="gpt-image-2", prompt="a cat", size="1024x1024", quality="low"
)


def result(**usage: object) -> ImageResult:
    return ImageResult(images=[GeneratedImage(url="https://example.com/a.png")], usage=Usage(**usage))  # type: ignore[arg-type]


async def setup(engine: AsyncEngine) -> tuple[Billing, Principal, Ledger]:
    key, _ = await KeyStore(engine).create("k", quota_usd="1")
    ledger = Ledger(engine)
    principal = Principal(key_id=key.id, name="k", billed=True)
    return Billing(PriceBook(PRICES), ledger), principal, ledger


async def open_holds(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(select(func.count()).select_from(OpenHoldRow))).scalar_one())


async def test_a_settled_request_returns_what_it_was_charged(engine: AsyncEngine) -> None:
    billing, principal, ledger = await setup(engine)
    meter = await billing.open(REQUEST, principal, "req_ok")
    assert meter.hold is not None and meter.hold.amount > 0
    assert await meter.settle(result(input_tokens=10, text_tokens=10, output_tokens=300)) == 9_050
    await meter.close()
    assert await ledger.balance(principal.key_id) == await ledger.total(principal.key_id) == 1_000_000 - 9_050
    assert await open_holds(engine) == 0


@pytest.mark.parametrize(
    "usage",
    [
        {"input_tokens": 10, "output_tokens": -1000},  # a negative count
        {"input_tokens": 5000, "text_tokens": 5000, "output_tokens": -1000},  # a negative cost
        {"input_tokens": 1.5e20, "output_tokens": 10},  # not a whole number: pricing fails
    ],
    ids=["negative", "negative-cost", "float"],
)
async def test_a_result_that_cannot_be_priced_releases_the_hold(
    engine: AsyncEngine, usage: dict[str, object]
) -> None:
    billing, principal, ledger = await setup(engine)
    meter = await billing.open(REQUEST, principal, "req_bad")
    with pytest.raises(UpstreamFailed) as caught:
        await meter.settle(result(**usage))
    assert caught.value.status == 502 and caught.value.code == "upstream_malformed"
    await meter.close()
    assert await ledger.balance(principal.key_id) == await ledger.total(principal.key_id) == 1_000_000
    kinds = [entry.kind for entry in await ledger.entries(request_id="req_bad")]
    assert kinds == ["hold", "release"]
    assert await open_holds(engine) == 0


async def test_the_ledger_refuses_a_negative_charge_and_gives_the_hold_back(engine: AsyncEngine) -> None:
    _, principal, ledger = await setup(engine)
    hold = await ledger.hold(principal.key_id, "req_neg", 40_000)
    with pytest.raises(ValueError, match="non-negative"):
        await ledger.settle(hold, -1_000)
    assert await ledger.balance(principal.key_id) == await ledger.total(principal.key_id) == 1_000_000
    assert await open_holds(engine) == 0


async def test_an_unbilled_principal_still_gets_the_cost_for_the_log(engine: AsyncEngine) -> None:
    billing, principal, ledger = await setup(engine)
    admin = Principal(key_id="admin", name="admin", is_admin=True)
    meter = await billing.open(REQUEST, admin, "req_admin")
    assert meter.hold is None
    assert await meter.settle(result(output_tokens=1000)) == 30_000
    assert await ledger.entries(request_id="req_admin") == []
    assert principal.billed
