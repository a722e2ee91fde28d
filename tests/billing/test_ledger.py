"""The ledger on SQLite and PostgreSQL: holds, settlements, releases, and the balance invariant."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from imagegate.billing.ledger import Ledger
from imagegate.db.engine import create_engine
from imagegate.db.keys import KeyStore
from imagegate.db.tables import ApiKeyRow
from imagegate.errors import RateLimited


async def assert_invariant(ledger: Ledger, key_id: str, balance: int) -> None:
    assert await ledger.balance(key_id) == balance
    assert await ledger.total(key_id) == balance


async def test_hold_then_settle_charges_exactly_the_actual_cost(engine: AsyncEngine) -> None:
    key, _ = await KeyStore(engine).create("k", quota_usd=Decimal("1"))
    ledger = Ledger(engine)
    hold = await ledger.hold(key.id, "req_1", 300_000)
    await assert_invariant(ledger, key.id, 700_000)
    assert await ledger.settle(hold, 120_000) == 120_000  # what was charged
    await assert_invariant(ledger, key.id, 880_000)
    kinds = [(e.kind, e.amount_micros) for e in await ledger.entries(key.id)]
    assert kinds == [("grant", 1_000_000), ("hold", -300_000), ("release", 300_000), ("charge", -120_000)]
    assert [e.kind for e in await ledger.entries(request_id="req_1")] == ["hold", "release", "charge"]


async def test_release_gives_everything_back_once(engine: AsyncEngine) -> None:
    key, _ = await KeyStore(engine).create("k", quota_usd="0.5")
    ledger = Ledger(engine)
    hold = await ledger.hold(key.id, "req_1", 500_000)
    await assert_invariant(ledger, key.id, 0)
    await ledger.release(hold)
    await ledger.release(hold)  # a second release (or a settle after it) changes nothing
    assert await ledger.settle(hold, 1) == 0
    await assert_invariant(ledger, key.id, 500_000)


async def test_a_hold_larger_than_the_balance_is_refused(engine: AsyncEngine) -> None:
    key, _ = await KeyStore(engine).create("k", quota_usd="0.01")
    ledger = Ledger(engine)
    with pytest.raises(RateLimited) as caught:
        await ledger.hold(key.id, "req_1", 10_001)
    assert caught.value.status == 429 and caught.value.code == "insufficient_quota"
    assert int(caught.value.headers["Retry-After"]) > 0
    await assert_invariant(ledger, key.id, 10_000)
    await ledger.hold(key.id, "req_2", 10_000)
    await assert_invariant(ledger, key.id, 0)


async def test_a_charge_above_the_hold_is_capped(engine: AsyncEngine) -> None:
    key, _ = await KeyStore(engine).create("k", quota_usd="1")
    ledger = Ledger(engine)
    hold = await ledger.hold(key.id, "req_1", 100)
    assert await ledger.settle(hold, 1_000) == 100
    await assert_invariant(ledger, key.id, 1_000_000 - 100)


async def test_unlimited_keys_hold_nothing(engine: AsyncEngine) -> None:
    key, _ = await KeyStore(engine).create("k")
    ledger = Ledger(engine)
    hold = await ledger.hold(key.id, "req_1", 10**12)
    assert not hold.recorded
    assert await ledger.settle(hold, 5) == 0
    assert await ledger.balance(key.id) is None
    assert await ledger.entries(key.id) == []


async def test_the_balance_can_never_go_negative(engine: AsyncEngine) -> None:
    key, _ = await KeyStore(engine).create("k", quota_usd="0.000001")
    async with engine.begin() as connection:
        with pytest.raises(IntegrityError):
            await connection.execute(
                update(ApiKeyRow).where(ApiKeyRow.id == key.id).values(balance_micros=-1)
            )


async def test_concurrent_holds_never_overdraw(engine: AsyncEngine, database_url: str) -> None:
    """Many holds at once, through two engines (two pools, as two processes have)."""
    key, _ = await KeyStore(engine).create("k", quota_usd="0.05")
    other = create_engine(database_url)
    try:
        ledgers = [Ledger(engine), Ledger(other)]

        async def attempt(index: int) -> bool:
            try:
                hold = await ledgers[index % 2].hold(key.id, f"req_{index}", 10_000)
            except RateLimited:
                return False
            await ledgers[index % 2].settle(hold, 10_000)
            return True

        results = await asyncio.gather(*(attempt(index) for index in range(40)))
    finally:
        await other.dispose()
    assert results.count(True) == 5
    await assert_invariant(Ledger(engine), key.id, 0)
