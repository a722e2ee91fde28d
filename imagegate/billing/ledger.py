"""The money ledger: holds before an upstream call, charges after it, grants from the operator.

Every movement of a key's money is a row, and the key's ``balance_micros`` moves by the same
amount in the same transaction, so ``balance == sum(ledger)`` at every commit:

    grant    +amount      quota given (or taken back) by the operator
    hold     -max         before the upstream call: the most the request can cost
    release  +max         the hold given back (on failure, and as the first half of a settle)
    charge   -actual      what the request really cost

    ledger = Ledger(engine)
    hold = await ledger.hold(key.id, "req_1", 40_000)   # RateLimited(insufficient_quota) if short
    try:
        result = await run_upstream()
    except BaseException:
        await ledger.release(hold)
        raise
    await ledger.settle(hold, 20_000)                    # charges 20_000, gives 20_000 back

An open hold is also a row of ``ledger_holds`` with its owner (this process); a settle or release
moves money only when its transaction deletes that row, so each hold closes exactly once, and
the holds of a process that died are given back by another (``billing/leases.py``).

Atomicity comes from the database, not from this process: a hold is one conditional
``UPDATE … SET balance = balance - :amount WHERE balance >= :amount``, which SQLite serialises
(one writer at a time) and PostgreSQL evaluates against the latest committed row (the row lock
makes concurrent holds queue), so any number of processes can never take a balance below zero.
Keys without a quota (``quota_micros IS NULL``) are unlimited: nothing is held or recorded.
Holds, settles and releases are group-committed (``billing/batcher.py``): whatever requests
queue while one transaction runs goes into the next, with the same conditional statements.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from imagegate.billing.batcher import HoldOp, LedgerBatcher, MoveOp
from imagegate.billing.ledger_sql import RowKind
from imagegate.db.new_rows import NewRow
from imagegate.db.tables import ApiKeyRow, LedgerRow
from imagegate.errors import RateLimited
from imagegate.money import format_usd

logger = logging.getLogger("imagegate.billing")

#: Waiting does not bring quota back (only finishing requests might), so clients are told to
#: back off for a while, and the OpenAI SDKs not to retry on their own.
QUOTA_RETRY_AFTER_S = 60


@dataclass(slots=True)
class Hold:
    """Money set aside for one request. ``recorded`` is False for unlimited keys (nothing held)."""

    key_id: str
    request_id: str
    amount: int
    recorded: bool
    closed: bool = False


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    id: int
    key_id: str
    request_id: str | None
    kind: str
    amount_micros: int
    created_at: datetime


class Ledger:
    """Holds, settlements and grants against the keys in the database behind ``engine``.

    Holds belong to ``owner``, this process (a fresh id when not given): while its lease is
    renewed (`billing.leases.StaleHoldReaper`) they are its own; once the lease runs out, any
    process gives them back.
    """

    def __init__(self, engine: AsyncEngine, *, owner: str | None = None, batch_size: int = 500) -> None:
        self._engine = engine
        self.owner = owner or new_owner_id()
        # Holds, settles and releases share transactions (group commit); see billing/batcher.py.
        self.batcher = LedgerBatcher(engine, owner=self.owner, batch_size=batch_size)

    async def hold(
        self,
        key_id: str,
        request_id: str,
        amount: int,
        *,
        model: str | None = None,
        endpoint: str | None = None,
        rows: tuple[NewRow, ...] = (),
    ) -> Hold:
        """Set ``amount`` micro-USD aside, or raise 429 ``insufficient_quota`` when the key is short.

        ``model`` and ``endpoint`` go into the request log if this process dies mid-request.
        ``rows`` are inserted in the hold's own transaction, exactly when the hold is recorded
        (the returned hold's ``recorded``). Cancelling the caller never loses money: a hold taken
        after its waiter left is given back, unless it brought rows (they own it then).
        """
        if not _is_amount(amount):
            raise ValueError(f"a hold must be a non-negative integer, not {amount!r}")
        if amount == 0:
            return Hold(key_id, request_id, 0, recorded=False)
        op = HoldOp(key_id, request_id, amount, model, endpoint, rows=rows)
        refusal = await self.batcher.hold(op)
        if refusal is None:
            return Hold(key_id, request_id, amount, recorded=True)
        if not refusal.exists:
            raise ValueError(f"no key with id {key_id!r}")
        if refusal.quota_micros is None:
            return Hold(key_id, request_id, amount, recorded=False)
        raise insufficient_quota(amount, refusal.balance_micros)

    async def settle(self, hold: Hold, actual: int) -> int:
        """Charge ``actual`` (at most the hold), give the rest back; returns what was charged.

        Nothing is charged (0) when the hold was closed already: settled, released, or given
        back by the stale-hold reaper. An ``actual`` that is not a non-negative integer is
        refused before anything is written: the hold is released and ValueError raised, so a
        bad number can never leave money held. The write is queued before this first waits, so
        it happens even if the caller is cancelled.
        """
        if not _is_amount(actual):
            await self.release(hold)
            raise ValueError(f"a charge must be a non-negative integer, not {actual!r}")
        if actual > hold.amount:
            # The hold was the promise made to the key's owner; never take more than it.
            logger.warning(
                "cost %s exceeds the hold %s for request %s; charging the hold",
                format_usd(actual),
                format_usd(hold.amount),
                hold.request_id,
            )
            actual = hold.amount
        if not self._close(hold):
            return 0
        rows: tuple[tuple[RowKind, int], ...] = (("release", hold.amount), ("charge", -actual))
        op = MoveOp(hold.key_id, hold.request_id, hold.amount - actual, rows)
        if await asyncio.shield(self.batcher.submit_move(op)):
            return actual
        # Closed already: by an earlier commit of this very settle (its answer lost, then
        # retried), or released (by the stale-hold reaper) before the request could finish.
        charged = await self._charged(hold.request_id)
        if charged is None:
            logger.warning("request %s was not charged: its hold had been released already", hold.request_id)
        return charged or 0

    async def release(self, hold: Hold) -> bool:
        """Give the whole hold back (the request failed or was abandoned before a result).

        False when there was nothing to give back (unlimited key, or closed already).
        """
        if not self._close(hold):
            return False
        op = MoveOp(hold.key_id, hold.request_id, hold.amount, (("release", hold.amount),))
        return await asyncio.shield(self.batcher.submit_move(op))

    async def _charged(self, request_id: str) -> int | None:
        """What the ledger charged the request (None: no charge row)."""
        query = select(LedgerRow.amount_micros).where(
            LedgerRow.request_id == request_id, LedgerRow.kind == "charge"
        )
        async with self._engine.connect() as connection:
            amount = (await connection.execute(query)).scalar()
        return None if amount is None else -int(amount)

    async def drain(self) -> None:
        """Wait for every queued hold, settle and release to be written (at shutdown)."""
        await self.batcher.drain()

    async def balance(self, key_id: str) -> int | None:
        """What the key has left; None for an unlimited key (or no such key)."""
        query = select(ApiKeyRow.quota_micros, ApiKeyRow.balance_micros).where(ApiKeyRow.id == key_id)
        async with self._engine.connect() as connection:
            row = (await connection.execute(query)).first()
        return None if row is None or row[0] is None else int(row[1])

    async def total(self, key_id: str) -> int:
        """The sum of the key's ledger: always equal to its balance."""
        query = select(func.coalesce(func.sum(LedgerRow.amount_micros), 0)).where(LedgerRow.key_id == key_id)
        async with self._engine.connect() as connection:
            return int((await connection.execute(query)).scalar_one())

    async def entries(
        self, key_id: str | None = None, request_id: str | None = None, limit: int = 1000
    ) -> list[LedgerEntry]:
        """Ledger rows, oldest first, for a key and/or a request."""
        query = select(*_ENTRY_COLUMNS).order_by(LedgerRow.id).limit(limit)
        if key_id is not None:
            query = query.where(LedgerRow.key_id == key_id)
        if request_id is not None:
            query = query.where(LedgerRow.request_id == request_id)
        async with self._engine.connect() as connection:
            rows = (await connection.execute(query)).all()
        return [LedgerEntry(*row) for row in rows]

    @staticmethod
    def _close(hold: Hold) -> bool:
        """Mark the hold done; False when there is nothing (more) to do for it."""
        if hold.closed:
            return False
        hold.closed = True
        return hold.recorded


def new_owner_id() -> str:
    """A fresh id for the process that takes holds (one per `Ledger`)."""
    return f"own_{secrets.token_hex(8)}"


def _is_amount(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def insufficient_quota(amount: int, balance: int) -> RateLimited:
    """The 429 for a request that may cost ``amount`` on a key with ``balance`` left."""
    return RateLimited(
        f"You exceeded your quota: this request may cost up to ${format_usd(amount)} and the key "
        f"has ${format_usd(balance)} left. Ask the operator for more quota.",
        code="insufficient_quota",
        headers={"Retry-After": str(QUOTA_RETRY_AFTER_S), "x-should-retry": "false"},
    )


_ENTRY_COLUMNS = (
    LedgerRow.id,
    LedgerRow.key_id,
    LedgerRow.request_id,
    LedgerRow.kind,
    LedgerRow.amount_micros,
    LedgerRow.created_at,
)
