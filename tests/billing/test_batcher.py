"""The ledger's group commit on SQLite and PostgreSQL: exact under concurrency, cancellation, failure."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from decimal import Decimal

import pytest
from sqlalchemy import text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from imagegate.billing.batcher import HoldOp, MoveOp
from imagegate.billing.ledger import Hold, Ledger
from imagegate.billing.meter import Billing
from imagegate.billing.prices import PriceBook
from imagegate.db.engine import create_engine
from imagegate.db.keys import KeyStore
from imagegate.db.tables import ApiKeyRow
from imagegate.errors import RateLimited

# Generous: the machine running the tests may be busy.
WAIT_S = 30


async def assert_invariant(ledger: Ledger, key_id: str, balance: int) -> None:
    assert await ledger.balance(key_id) == balance
    assert await ledger.total(key_id) == balance


async def kinds(ledger: Ledger, request_id: str) -> list[tuple[str, int]]:
    return [(e.kind, e.amount_micros) for e in await ledger.entries(request_id=request_id)]


async def wait_for(condition: Callable[[], object]) -> None:
    for _ in range(int(WAIT_S / 0.005)):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("timed out")


@contextlib.asynccontextmanager
async def key_locked(database_url: str, key_id: str) -> AsyncIterator[None]:
    """Another connection writing the key's row, so the ledger's next transaction waits for it."""
    other = create_engine(database_url)
    try:
        async with other.begin() as connection:
            touch = update(ApiKeyRow).where(ApiKeyRow.id == key_id)
            await connection.execute(touch.values(balance_micros=ApiKeyRow.balance_micros))
            yield
    finally:
        await other.dispose()


async def test_concurrent_holds_get_exactly_the_quota_in_few_transactions(engine: AsyncEngine) -> None:
    key, _ = await KeyStore(engine).create("k", quota_usd=Decimal("0.07"))
    ledger = Ledger(engine)

    async def attempt(index: int) -> bool:
        try:
            hold = await ledger.hold(key.id, f"req_{index}", 10_000)
        except RateLimited as refused:
            assert refused.code == "insufficient_quota"
            return False
        await ledger.settle(hold, 4_000)
        return True

    results = await asyncio.gather(*(attempt(index) for index in range(60)))
    assert results.count(True) == 7
    # Settles hand 6_000 back each, so later holds may still fit: every success settled exactly.
    charges = [e for e in await ledger.entries(key.id) if e.kind == "charge"]
    assert len(charges) == results.count(True)
    await assert_invariant(ledger, key.id, 70_000 - 4_000 * len(charges))
    assert ledger.batcher.batches < 60


async def test_holds_and_settles_of_several_keys_share_a_batch(engine: AsyncEngine) -> None:
    keys = [(await KeyStore(engine).create(f"k{i}", quota_usd="1"))[0] for i in range(3)]
    unlimited, _ = await KeyStore(engine).create("free")
    ledger = Ledger(engine)
    first = await asyncio.gather(*(ledger.hold(key.id, f"a_{key.id}", 100_000) for key in keys))

    async def settle_then_hold(hold: Hold) -> Hold:
        _, second = await asyncio.gather(
            ledger.settle(hold, 30_000), ledger.hold(hold.key_id, f"b_{hold.key_id}", 950_000)
        )
        return second

    seconds = await asyncio.gather(*(settle_then_hold(hold) for hold in first))
    assert all(hold.recorded for hold in seconds)
    assert not (await ledger.hold(unlimited.id, "free", 10**9)).recorded
    for key in keys:
        await assert_invariant(ledger, key.id, 1_000_000 - 30_000 - 950_000)
        expected = [("hold", -100_000), ("release", 100_000), ("charge", -30_000)]
        assert await kinds(ledger, f"a_{key.id}") == expected
    with pytest.raises(ValueError, match="no key"):
        await ledger.hold("key_missing", "x", 1)


async def test_a_waiter_cancelled_before_its_batch_takes_nothing(engine: AsyncEngine) -> None:
    key, _ = await KeyStore(engine).create("k", quota_usd="1")
    ledger = Ledger(engine)
    task = asyncio.create_task(ledger.hold(key.id, "req_gone", 500_000))
    await asyncio.sleep(0)  # the hold is queued; the batch has not started
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await ledger.drain()
    assert await kinds(ledger, "req_gone") in ([], [("hold", -500_000), ("release", 500_000)])
    await assert_invariant(ledger, key.id, 1_000_000)


async def test_a_hold_taken_after_its_waiter_was_cancelled_is_released(
    engine: AsyncEngine, database_url: str
) -> None:
    key, _ = await KeyStore(engine).create("k", quota_usd="1")
    ledger = Ledger(engine)
    async with key_locked(database_url, key.id):
        task = asyncio.create_task(ledger.hold(key.id, "req_gone", 400_000))
        await wait_for(lambda: ledger.batcher.in_flight)  # the batch has started
        task.cancel()  # the batch is waiting for the row: it will take the hold after this
        with pytest.raises(asyncio.CancelledError):
            await task
    await ledger.drain()
    assert await kinds(ledger, "req_gone") == [("hold", -400_000), ("release", 400_000)]
    await assert_invariant(ledger, key.id, 1_000_000)


async def test_a_cancellation_that_arrives_with_the_result_releases_the_hold(engine: AsyncEngine) -> None:
    key, _ = await KeyStore(engine).create("k", quota_usd="1")
    ledger = Ledger(engine)
    op = HoldOp(key.id, "req_late", 250_000)
    future = ledger.batcher.submit_hold(op)
    task = asyncio.create_task(ledger.batcher.outcome(op, future))
    # Runs before the task wakes up: the task is cancelled with the hold already taken.
    future.add_done_callback(lambda _: task.cancel())
    with pytest.raises(asyncio.CancelledError):
        await task
    assert future.result() is None  # the batch did take it
    await ledger.drain()
    assert await kinds(ledger, "req_late") == [("hold", -250_000), ("release", 250_000)]
    await assert_invariant(ledger, key.id, 1_000_000)


async def test_drain_writes_everything_queued_before_shutdown(engine: AsyncEngine) -> None:
    key, _ = await KeyStore(engine).create("k", quota_usd="1")
    ledger = Ledger(engine)
    held = [await ledger.hold(key.id, f"req_{i}", 10_000) for i in range(20)]
    # Settled by requests that are not awaited (as in-flight requests at shutdown).
    tasks = [asyncio.create_task(ledger.settle(hold, 2_500)) for hold in held]
    holds = [ledger.batcher.submit_hold(HoldOp(key.id, f"late_{i}", 1_000)) for i in range(30)]
    await asyncio.sleep(0)
    await Billing(PriceBook({}), ledger).drain()
    assert all(task.done() for task in tasks) and all(future.done() for future in holds)
    assert [future.result() for future in holds] == [None] * 30
    await assert_invariant(ledger, key.id, 1_000_000 - 20 * 2_500 - 30 * 1_000)


async def test_one_bad_operation_fails_only_its_own_future(engine: AsyncEngine) -> None:
    key, _ = await KeyStore(engine).create("k", quota_usd="1")
    ledger = Ledger(engine)
    await ledger.hold(key.id, "req_dup", 50_000)
    good = ledger.batcher.submit_hold(HoldOp(key.id, "req_good", 100_000))
    # A second hold under a request id already held: the unique keys refuse it.
    bad = ledger.batcher.submit_hold(HoldOp(key.id, "req_dup", 7_000))
    assert await good is None
    with pytest.raises(DBAPIError):
        await bad
    await assert_invariant(ledger, key.id, 850_000)


async def test_a_failing_batch_fails_every_future_and_changes_nothing(engine: AsyncEngine) -> None:
    key, _ = await KeyStore(engine).create("k", quota_usd="1")
    ledger = Ledger(engine)
    hold = await ledger.hold(key.id, "req_1", 100_000)
    async with engine.begin() as connection:
        await connection.execute(text("ALTER TABLE ledger RENAME TO ledger_away"))
    try:
        holds = [ledger.batcher.submit_hold(HoldOp(key.id, f"req_{i}", 1_000)) for i in range(2, 6)]
        with pytest.raises(DBAPIError):
            await ledger.settle(hold, 40_000)
        outcomes = await asyncio.gather(*holds, return_exceptions=True)
        assert all(isinstance(outcome, DBAPIError) for outcome in outcomes)
    finally:
        async with engine.begin() as connection:
            await connection.execute(text("ALTER TABLE ledger_away RENAME TO ledger"))
    # Nothing moved: the balance still shows only the first hold, equal to the ledger.
    await assert_invariant(ledger, key.id, 900_000)
    with pytest.raises(RateLimited):
        await ledger.hold(key.id, "req_big", 900_001)


async def test_one_hold_closes_once_even_when_asked_twice_in_one_batch(engine: AsyncEngine) -> None:
    key, _ = await KeyStore(engine).create("k", quota_usd="1")
    ledger = Ledger(engine)
    await ledger.hold(key.id, "req_1", 100_000)
    settle = (("release", 100_000), ("charge", -30_000))
    first = ledger.batcher.submit_move(MoveOp(key.id, "req_1", 70_000, settle))
    again = ledger.batcher.submit_move(MoveOp(key.id, "req_1", 100_000, (("release", 100_000),)))
    assert await asyncio.gather(first, again) == [True, False]
    assert await kinds(ledger, "req_1") == [("hold", -100_000), ("release", 100_000), ("charge", -30_000)]
    await assert_invariant(ledger, key.id, 970_000)
