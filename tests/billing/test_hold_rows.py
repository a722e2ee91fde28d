"""Rows committed with a hold (a submitted task's row), on a SQLite file and on PostgreSQL.

They are written in the hold's own transaction exactly when the hold is taken: never for a key
that is short or unlimited, never without the hold when the row itself fails, and a hold that
brought rows stays with them when its waiter goes away.
"""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from imagegate.billing.batcher import HoldOp
from imagegate.billing.ledger import Ledger
from imagegate.db.keys import KeyStore
from imagegate.db.tasks import TaskStore
from imagegate.errors import RateLimited
from tests.billing.test_batcher import assert_invariant, kinds
from tests.db.task_rows import queued_task


def task_row(store: TaskStore, task_id: str, key_id: str, amount: int) -> HoldOp:
    values = queued_task(task_id, key_id=key_id, hold_micros=amount, request={"prompt": "一只猫", "n": 1})
    return HoldOp(key_id, task_id, amount, rows=(store.new_row(values),))


async def test_a_taken_hold_writes_its_rows_as_the_engine_would(engine: AsyncEngine) -> None:
    key, _ = await KeyStore(engine).create("k", quota_usd="1")
    ledger, store = Ledger(engine), TaskStore(engine)
    op = task_row(store, "task_a", key.id, 100_000)
    hold = await ledger.hold(key.id, op.request_id, op.amount, rows=op.rows)
    assert hold.recorded
    task = await store.get("task_a")
    assert task is not None
    assert task.status == "queued" and task.hold_micros == 100_000
    assert task.request == {"prompt": "一只猫", "n": 1}  # JSON written and read back, Chinese intact
    assert task.created_at == op.rows[0].values["created_at"]
    await assert_invariant(ledger, key.id, 900_000)


async def test_a_refused_hold_writes_no_rows(engine: AsyncEngine) -> None:
    key, _ = await KeyStore(engine).create("k", quota_usd="0.05")
    ledger, store = Ledger(engine), TaskStore(engine)
    op = task_row(store, "task_short", key.id, 100_000)
    with pytest.raises(RateLimited):
        await ledger.hold(key.id, op.request_id, op.amount, rows=op.rows)
    assert await store.get("task_short") is None
    await assert_invariant(ledger, key.id, 50_000)


async def test_an_unlimited_keys_hold_is_not_recorded_and_writes_no_rows(engine: AsyncEngine) -> None:
    key, _ = await KeyStore(engine).create("k")  # no quota
    ledger, store = Ledger(engine), TaskStore(engine)
    op = task_row(store, "task_free", key.id, 100_000)
    hold = await ledger.hold(key.id, op.request_id, op.amount, rows=op.rows)
    assert not hold.recorded
    assert await store.get("task_free") is None  # the caller writes it, knowing nothing is held


async def test_a_row_that_fails_fails_only_its_own_hold(engine: AsyncEngine) -> None:
    key, _ = await KeyStore(engine).create("k", quota_usd="1")
    ledger, store = Ledger(engine), TaskStore(engine)
    await store.create(queued_task("task_dup", key_id=key.id), [])
    good = task_row(store, "task_good", key.id, 100_000)
    bad = task_row(store, "task_dup", key.id, 40_000)  # the id is taken: its row fails
    outcomes = await asyncio.gather(
        ledger.batcher.hold(good), ledger.batcher.hold(bad), return_exceptions=True
    )
    assert outcomes[0] is None
    assert isinstance(outcomes[1], DBAPIError)
    assert await store.get("task_good") is not None
    assert await kinds(ledger, "task_dup") == []  # no hold without its row
    await assert_invariant(ledger, key.id, 900_000)


async def test_a_hold_that_brought_rows_stays_with_them_when_its_waiter_leaves(engine: AsyncEngine) -> None:
    key, _ = await KeyStore(engine).create("k", quota_usd="1")
    ledger, store = Ledger(engine), TaskStore(engine)
    op = task_row(store, "task_left", key.id, 250_000)
    future = ledger.batcher.submit_hold(op)
    waiter = asyncio.create_task(ledger.batcher.outcome(op, future))
    # Runs before the waiter wakes up: it is cancelled with the hold and the row committed.
    future.add_done_callback(lambda _: waiter.cancel())
    with pytest.raises(asyncio.CancelledError):
        await waiter
    await ledger.drain()
    # The task exists and will be run and settled: its money must still be held for it.
    assert await kinds(ledger, "task_left") == [("hold", -250_000)]
    task = await store.get("task_left")
    assert task is not None and task.hold_micros == 250_000
    await assert_invariant(ledger, key.id, 750_000)
