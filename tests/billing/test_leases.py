"""Holds of dead processes come back, on SQLite and PostgreSQL; each hold closes exactly once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from imagegate.billing.leases import StaleHoldReaper, release_stale, renew_lease
from imagegate.billing.ledger import Hold, Ledger
from imagegate.db.engine import create_engine
from imagegate.db.keys import KeyStore
from imagegate.db.request_logs import RequestLogRow
from imagegate.db.tables import LeaseRow, LedgerRow, OpenHoldRow


async def assert_invariant(ledger: Ledger, key_id: str, balance: int) -> None:
    assert await ledger.balance(key_id) == balance
    assert await ledger.total(key_id) == balance


async def kinds(ledger: Ledger, request_id: str) -> list[tuple[str, int]]:
    return [(e.kind, e.amount_micros) for e in await ledger.entries(request_id=request_id)]


async def expire(engine: AsyncEngine, owner: str) -> None:
    """The owner's process died a while ago: its lease ran out."""
    gone = datetime.now(UTC) - timedelta(seconds=5)
    async with engine.begin() as connection:
        await connection.execute(update(LeaseRow).where(LeaseRow.owner == owner).values(expires_at=gone))


async def log_rows(engine: AsyncEngine) -> dict[str, RequestLogRow]:
    async with engine.connect() as connection:
        rows = (await connection.execute(select(RequestLogRow.__table__))).all()
    return {row.id: row for row in rows}  # type: ignore[misc]


async def test_the_holds_of_a_process_whose_lease_ran_out_are_released_and_logged(
    engine: AsyncEngine,
) -> None:
    key, _ = await KeyStore(engine).create("k", quota_usd="1")
    dead, alive, me = Ledger(engine), Ledger(engine), Ledger(engine)
    for ledger in (dead, alive, me):
        await renew_lease(engine, ledger.owner, 30)
    await dead.hold(key.id, "req_dead_1", 100_000, model="gpt-image-2", endpoint="/v1/images/edits")
    await dead.hold(key.id, "req_dead_2", 50_000)
    settled = await dead.hold(key.id, "req_dead_done", 10_000)
    await dead.settle(settled, 10_000)
    await alive.hold(key.id, "req_alive", 200_000)
    await me.hold(key.id, "req_mine", 300_000)
    await expire(engine, dead.owner)
    await expire(engine, me.owner)  # a process never releases its own holds, even if late to renew

    released = await release_stale(engine, keep=me.owner)

    assert sorted(hold.request_id for hold in released) == ["req_dead_1", "req_dead_2"]
    assert {hold.owner for hold in released} == {dead.owner}
    assert await kinds(dead, "req_dead_1") == [("hold", -100_000), ("release", 100_000)]
    await assert_invariant(dead, key.id, 1_000_000 - 10_000 - 200_000 - 300_000)
    logged = await log_rows(engine)
    assert set(logged) == {"req_dead_1", "req_dead_2"}
    row = logged["req_dead_1"]
    assert (row.status, row.error_code, row.key_id, row.model) == (499, "aborted", key.id, "gpt-image-2")
    assert row.endpoint == "/v1/images/edits" and row.cost_micros is None
    assert logged["req_dead_2"].endpoint == "unknown"  # taken without one
    # Once is all: a second pass (or another process doing the same) finds nothing.
    assert await release_stale(engine, keep=me.owner) == []
    await assert_invariant(dead, key.id, 490_000)
    # The dead process's lease is forgotten with its last hold; the live ones stay.
    async with engine.connect() as connection:
        owners = set((await connection.execute(select(LeaseRow.owner))).scalars())
    assert owners == {alive.owner, me.owner}


async def test_a_settle_after_the_reaper_released_the_hold_applies_nothing(engine: AsyncEngine) -> None:
    key, _ = await KeyStore(engine).create("k", quota_usd="1")
    ledger = Ledger(engine)
    await renew_lease(engine, ledger.owner, 30)
    late = await ledger.hold(key.id, "req_late", 400_000)
    released = await ledger.hold(key.id, "req_released", 100_000)
    await expire(engine, ledger.owner)
    assert len(await release_stale(engine)) == 2
    # The process was only stalled, and now finishes its requests: nothing moves twice.
    assert await ledger.settle(late, 300_000) == 0
    assert await ledger.release(released) is False
    assert await kinds(ledger, "req_late") == [("hold", -400_000), ("release", 400_000)]
    await assert_invariant(ledger, key.id, 1_000_000)


async def test_a_retried_settle_never_applies_twice(engine: AsyncEngine) -> None:
    key, _ = await KeyStore(engine).create("k", quota_usd="1")
    ledger = Ledger(engine)
    hold = await ledger.hold(key.id, "req_1", 300_000)
    assert await ledger.settle(hold, 100_000) == 100_000
    # The same settle again, as a retry after an ambiguous commit would send it.
    retry = Hold(hold.key_id, hold.request_id, hold.amount, recorded=True)
    assert await ledger.settle(retry, 100_000) == 100_000  # what the first one charged, once
    assert await ledger.release(Hold(hold.key_id, hold.request_id, hold.amount, recorded=True)) is False
    assert await kinds(ledger, "req_1") == [("hold", -300_000), ("release", 300_000), ("charge", -100_000)]
    await assert_invariant(ledger, key.id, 900_000)


async def test_a_retried_hold_whose_first_commit_landed_is_taken_once(engine: AsyncEngine) -> None:
    key, _ = await KeyStore(engine).create("k", quota_usd="1")
    ledger = Ledger(engine)
    await ledger.hold(key.id, "req_1", 300_000)
    again = await ledger.hold(key.id, "req_1", 300_000)  # its answer was lost; the retry finds it
    assert again.recorded
    await assert_invariant(ledger, key.id, 700_000)
    assert await ledger.settle(again, 300_000) == 300_000
    await assert_invariant(ledger, key.id, 700_000)


async def test_the_database_refuses_a_second_row_of_one_kind_for_a_request(engine: AsyncEngine) -> None:
    key, _ = await KeyStore(engine).create("k", quota_usd="1")
    ledger = Ledger(engine)
    await ledger.settle(await ledger.hold(key.id, "req_1", 10), 10)
    row = {"key_id": key.id, "request_id": "req_1", "kind": "charge", "amount_micros": -10}
    with pytest.raises(IntegrityError):
        async with engine.begin() as connection:
            await connection.execute(insert(LedgerRow).values(**row, created_at=datetime.now(UTC)))


async def test_holds_without_an_owner_are_released(engine: AsyncEngine) -> None:
    """Holds open before owners existed (the migration gives them none) come back at once."""
    key, _ = await KeyStore(engine).create("k", quota_usd="1")
    ledger = Ledger(engine)
    await ledger.hold(key.id, "req_old", 250_000)
    async with engine.begin() as connection:
        await connection.execute(update(OpenHoldRow).values(owner=None))
    released = await release_stale(engine)
    found = [(hold.request_id, hold.amount_micros, hold.owner) for hold in released]
    assert found == [("req_old", 250_000, None)]
    await assert_invariant(ledger, key.id, 1_000_000)


async def test_the_reaper_keeps_its_lease_and_releases_the_dead_in_the_background(
    engine: AsyncEngine,
) -> None:
    key, _ = await KeyStore(engine).create("k", quota_usd="1")
    dead, survivor = Ledger(engine), Ledger(engine)
    await renew_lease(engine, dead.owner, 0.5)  # it died just after taking its hold
    await dead.hold(key.id, "req_dead", 100_000)
    reaper = StaleHoldReaper(engine, survivor.owner, lease_s=0.5)
    await reaper.start()
    try:
        mine = await survivor.hold(key.id, "req_mine", 200_000)
        for _ in range(200):
            if reaper.released:
                break
            await asyncio.sleep(0.05)
        assert reaper.released == 1
        await asyncio.sleep(1.0)  # two more lease lengths: the survivor's own lease stays renewed
        assert await survivor.settle(mine, 200_000) == 200_000
    finally:
        await reaper.aclose()
    await assert_invariant(survivor, key.id, 800_000)
    assert (await log_rows(engine))["req_dead"].status == 499


async def test_closing_the_reaper_ends_its_lease(engine: AsyncEngine) -> None:
    key, _ = await KeyStore(engine).create("k", quota_usd="1")
    ledger = Ledger(engine)
    reaper = StaleHoldReaper(engine, ledger.owner, lease_s=30)
    await reaper.start()
    await ledger.hold(key.id, "req_stuck", 100_000)  # a hold its process could not close
    assert await release_stale(engine) == []
    await reaper.aclose()
    assert [hold.request_id for hold in await release_stale(engine)] == ["req_stuck"]
    await assert_invariant(ledger, key.id, 1_000_000)


async def test_a_process_stalled_past_its_lease_takes_it_anew(engine: AsyncEngine) -> None:
    owner = Ledger(engine).owner
    assert await renew_lease(engine, owner, 30) is True
    assert await renew_lease(engine, owner, 30) is False
    await expire(engine, owner)
    assert await release_stale(engine) == []  # nothing held: the expired lease is forgotten
    assert await renew_lease(engine, owner, 30) is True


async def test_processes_releasing_at_once_give_each_hold_back_once(
    engine: AsyncEngine, database_url: str
) -> None:
    key, _ = await KeyStore(engine).create("k", quota_usd="1")
    dead = Ledger(engine)
    await renew_lease(engine, dead.owner, -1)
    held = {f"req_{index}" for index in range(30)}
    for request_id in held:
        await dead.hold(key.id, request_id, 1_000)
    other = create_engine(database_url)
    try:
        results = await asyncio.gather(release_stale(engine), release_stale(other), release_stale(engine))
    finally:
        await other.dispose()
    released = [hold.request_id for result in results for hold in result]
    assert sorted(released) == sorted(held)
    await assert_invariant(dead, key.id, 1_000_000)
    assert len(await log_rows(engine)) == 30
