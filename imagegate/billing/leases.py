"""Holds of dead processes come back: process leases and the stale-hold reaper.

Every process that takes holds has an owner id (`Ledger.owner`) and a row in ``ledger_leases``
whose ``expires_at`` it pushes forward every ``lease_s / 3``. A process killed mid-request
leaves its holds in ``ledger_holds``; once its lease has run out, any process (at start-up and
every ``lease_s / 2``) gives them back and writes the interrupted requests to the request log as
aborted (status 499, code ``aborted``), one transaction per batch of holds. The lease runs out
at most ``lease_s`` after the death, so with the default 30 s lease a dead process's holds are
back within 45 s of its death (seen by a survivor) or of a restart.

    reaper = StaleHoldReaper(engine, ledger.owner, lease_s=30)
    await reaper.start()             # lease taken, stale holds released once, then in the background
    ...
    await reaper.aclose()            # lease given up: what this process still holds is reapable
    released = await release_stale(engine)   # by hand (`imagegate ledger release-stale`)

A hold whose owner has no lease row at all is stale too (holds from before owners existed, a
process that ended its lease with holds it could not close), so every `Ledger` that takes holds
needs a running reaper (or `renew_lease`) for its owner. Leases compare the processes' own
clocks, which must agree to well within a lease (NTP).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, delete, exists, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from imagegate.db.request_logs import aborted_log_values
from imagegate.db.request_logs import table as request_logs
from imagegate.db.tables import ApiKeyRow, LeaseRow, LedgerRow, OpenHoldRow
from imagegate.money import format_usd

logger = logging.getLogger("imagegate.billing")

DEFAULT_LEASE_S = 30.0
#: Holds released per transaction.
_BATCH = 200


@dataclass(frozen=True, slots=True)
class ReleasedHold:
    """A hold given back because its process died, as printed by the CLI."""

    request_id: str
    key_id: str
    amount_micros: int
    owner: str | None
    model: str | None
    endpoint: str | None
    created_at: datetime

    def describe(self) -> str:
        owner = self.owner or "unknown process"
        return (
            f"{self.request_id}  key {self.key_id}  ${format_usd(self.amount_micros)}  "
            f"{self.model or '-'}  {self.endpoint or '-'}  held since {self.created_at:%Y-%m-%d %H:%M:%S}Z"
            f"  by {owner}"
        )


class StaleHoldReaper:
    """Keeps this process's lease alive and gives back the holds of processes whose lease ran out."""

    def __init__(self, engine: AsyncEngine, owner: str, *, lease_s: float = DEFAULT_LEASE_S) -> None:
        if lease_s <= 0:
            raise ValueError("lease_s must be positive")
        self._engine = engine
        self.owner = owner
        self.lease_s = lease_s
        self._task: asyncio.Task[None] | None = None
        #: Holds this reaper has given back (tests, metrics).
        self.released = 0

    async def start(self) -> None:
        """Take the lease, release what is stale now, then keep both going in the background."""
        await renew_lease(self._engine, self.owner, self.lease_s)
        await self._reap_logged()
        self._task = asyncio.create_task(self._run(), name="imagegate-hold-reaper")

    async def aclose(self) -> None:
        """Stop, and end the lease now: holds this process could not close are anyone's to release."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            await end_lease(self._engine, self.owner)
        except Exception:
            logger.exception("could not end the lease of %s", self.owner)

    async def _run(self) -> None:
        # Ticks of lease/6: renew every other tick (lease/3), reap every third (lease/2).
        tick = 0
        while True:
            await asyncio.sleep(self.lease_s / 6)
            tick += 1
            if tick % 2 == 0:
                try:
                    taken_anew = await renew_lease(self._engine, self.owner, self.lease_s)
                except Exception:
                    logger.exception("renewing the hold lease of %s failed", self.owner)
                else:
                    if taken_anew:
                        # Stalled past its lease (or the database was away): other processes
                        # may have given back the holds of requests this one is still serving.
                        logger.warning("the hold lease of %s had run out and was taken again", self.owner)
            if tick % 3 == 0:
                await self._reap_logged()

    async def _reap_logged(self) -> None:
        try:
            released = await release_stale(self._engine, keep=self.owner)
        except Exception:
            logger.exception("releasing stale holds failed; will try again")
            return
        self.released += len(released)
        for hold in released:
            logger.warning("released the hold of a dead process: %s", hold.describe())


async def renew_lease(engine: AsyncEngine, owner: str, lease_s: float) -> bool:
    """Push the lease of ``owner`` to ``lease_s`` from now; True when it had to be taken anew."""
    now = datetime.now(UTC)
    expires = now + timedelta(seconds=lease_s)
    async with engine.begin() as connection:
        renewed = await connection.execute(
            update(LeaseRow).where(LeaseRow.owner == owner).values(expires_at=expires)
        )
        if renewed.rowcount == 1:
            return False
        values = {"owner": owner, "host": socket.gethostname()[:200], "pid": os.getpid()}
        await connection.execute(insert(LeaseRow).values(**values, started_at=now, expires_at=expires))
    return True


async def end_lease(engine: AsyncEngine, owner: str) -> None:
    async with engine.begin() as connection:
        await connection.execute(delete(LeaseRow).where(LeaseRow.owner == owner))


async def release_stale(engine: AsyncEngine, *, keep: str | None = None) -> list[ReleasedHold]:
    """Give back every hold whose owner has no live lease (but ``keep``'s); returns them.

    Each hold is claimed by deleting its ``ledger_holds`` row, so a hold settled meanwhile, or
    released by another process doing the same, is skipped: nothing is given back twice.
    """
    released: list[ReleasedHold] = []
    while True:
        batch = await _release_batch(engine, keep, datetime.now(UTC))
        released.extend(batch)
        if len(batch) < _BATCH:
            break
    async with engine.begin() as connection:
        await _forget_dead_leases(connection, keep, datetime.now(UTC))
    return released


async def _release_batch(engine: AsyncEngine, keep: str | None, now: datetime) -> list[ReleasedHold]:
    lease = LeaseRow.__table__.c
    live = exists().where(lease.owner == OpenHoldRow.owner, lease.expires_at >= now)
    stale = select(OpenHoldRow.request_id, OpenHoldRow.key_id).where(~live)
    if keep is not None:
        stale = stale.where(or_(OpenHoldRow.owner.is_(None), OpenHoldRow.owner != keep))
    # Read apart from the write: on SQLite a transaction that reads first cannot take the write
    # lock once another process has written meanwhile. The claim below checks staleness again.
    async with engine.connect() as connection:
        candidates = (await connection.execute(stale.limit(_BATCH))).all()
    if not candidates:
        return []
    async with engine.begin() as connection:
        keys = sorted({key for _, key in candidates})
        if connection.dialect.name == "postgresql":
            # The ledger batcher's order: key rows first (sorted), then the open holds.
            await connection.execute(
                select(ApiKeyRow.id).where(ApiKeyRow.id.in_(keys)).order_by(ApiKeyRow.id).with_for_update()
            )
        claim = (
            delete(OpenHoldRow)
            .where(OpenHoldRow.request_id.in_([request_id for request_id, _ in candidates]), ~live)
            .returning(*OpenHoldRow.__table__.c)
        )
        held = [ReleasedHold(*row) for row in (await connection.execute(claim)).all()]
        if held:
            await _give_back(connection, held, now)
    return held


async def _give_back(connection: AsyncConnection, held: list[ReleasedHold], now: datetime) -> None:
    """Release ``held`` (balances and ledger rows) and log each request as aborted."""
    deltas: dict[str, int] = defaultdict(int)
    for hold in held:
        deltas[hold.key_id] += hold.amount_micros
    for key, delta in sorted(deltas.items()):
        give = update(ApiKeyRow).where(ApiKeyRow.id == key)
        await connection.execute(give.values(balance_micros=ApiKeyRow.balance_micros + delta))
    await connection.execute(
        insert(LedgerRow),
        [
            {
                "key_id": h.key_id,
                "request_id": h.request_id,
                "kind": "release",
                "amount_micros": h.amount_micros,
                "created_at": now,
            }
            for h in held
        ],
    )
    rows = [aborted_log_values(h.request_id, h.key_id, h.model, h.endpoint, h.created_at, now) for h in held]
    # A request the dying process did manage to log keeps its own row.
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    await connection.execute(dialect.insert(request_logs).on_conflict_do_nothing(), rows)


async def _forget_dead_leases(connection: AsyncConnection, keep: str | None, now: datetime) -> None:
    """Delete expired leases that have no holds left (their processes are gone)."""
    lease = LeaseRow.__table__.c
    holding = exists().where(OpenHoldRow.owner == lease.owner)
    condition = and_(lease.expires_at < now, ~holding)
    if keep is not None:
        condition = and_(condition, lease.owner != keep)
    await connection.execute(delete(LeaseRow).where(condition))
