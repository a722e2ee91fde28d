"""The ledger's batches on PostgreSQL: the keys' rows are written last, just before COMMIT.

Every process's batch for a key waits on that key's row lock from the moment another batch
updates the row until it commits; so a batch first writes its new rows as if every hold will be
taken, and updates the keys last. A refused debit sends the batch round again in the careful
order, with the same outcomes as ever.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from imagegate.billing.batcher import HoldOp, MoveOp
from imagegate.billing.ledger import Ledger
from imagegate.db.keys import KeyStore
from tests.billing.test_batcher import assert_invariant, kinds
from tests.db.conftest import postgres_engine, postgres_url

__all__ = ["postgres_engine", "postgres_url"]


def watch_statements(engine: AsyncEngine) -> list[str]:
    """Each statement's first words, as sent (BEGIN and COMMIT are not statements here)."""
    seen: list[str] = []

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not statement.startswith("SELECT set_config("):  # planner settings, not data
            seen.append(" ".join(statement.split()[:3]))

    return seen


async def test_a_batch_updates_the_keys_row_after_its_inserts(postgres_engine: AsyncEngine) -> None:
    key, _ = await KeyStore(postgres_engine).create("k", quota_usd="1")
    ledger = Ledger(postgres_engine)
    await ledger.hold(key.id, "req_0", 100_000)
    seen = watch_statements(postgres_engine)
    settle = (("release", 100_000), ("charge", -30_000))
    move = ledger.batcher.submit_move(MoveOp(key.id, "req_0", 70_000, settle))
    holds = [ledger.batcher.submit_hold(HoldOp(key.id, f"req_{n}", 10_000)) for n in range(1, 4)]
    assert await move is True and await asyncio.gather(*holds) == [None, None, None]
    assert seen == [
        "DELETE FROM ledger_holds",  # the settle's claim
        "INSERT INTO ledger",
        "INSERT INTO ledger_holds",
        "UPDATE api_keys SET",  # the settle's move
        "UPDATE api_keys SET",  # the three holds, as one debit
    ]
    await assert_invariant(ledger, key.id, 1_000_000 - 30_000 - 30_000)


async def test_a_refused_debit_runs_the_batch_again_in_the_careful_order(
    postgres_engine: AsyncEngine,
) -> None:
    key, _ = await KeyStore(postgres_engine).create("k", quota_usd="0.025")
    ledger = Ledger(postgres_engine)
    seen = watch_statements(postgres_engine)
    holds = [ledger.batcher.submit_hold(HoldOp(key.id, f"req_{n}", 10_000)) for n in range(3)]
    outcomes = await asyncio.gather(*holds)
    # Their sum is more than the key has: the optimistic attempt is rolled back, then each
    # hold is decided alone: two taken, the third refused with what the key has left.
    assert outcomes[:2] == [None, None]
    refusal = outcomes[2]
    assert refusal is not None and refusal.balance_micros == 5_000
    assert seen.count("INSERT INTO ledger_holds") == 2  # once per attempt
    assert await kinds(ledger, "req_2") == []
    await assert_invariant(ledger, key.id, 5_000)
