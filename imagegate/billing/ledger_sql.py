"""One batch of ledger operations as one database transaction: the plan and its statements.

`apply_with_engine` runs a plan through SQLAlchemy (PostgreSQL, in-memory SQLite); a SQLite file
gets `ledger_sqlite.SqliteFileWriter`, which runs the same statements in the same order:

    claims    DELETE FROM ledger_holds WHERE request_id IN (…) RETURNING request_id
    moves     UPDATE api_keys SET balance = balance + :delta WHERE id = :key     (executemany)
    holds     UPDATE api_keys SET balance = balance - :amount
              WHERE id = :key AND quota IS NOT NULL AND balance >= :amount     (row count decides)
    rows      INSERT INTO ledger (…)                                           (executemany)
    opened    INSERT INTO ledger_holds (…)                                     (executemany)
    new rows  INSERT INTO <table> (…), the rows taken holds brought             (executemany)

That is the careful order, in which each hold is decided before its rows are written; SQLite
runs it, and PostgreSQL when its first attempt fails. That first attempt (`apply_with_engine`)
runs claims, then every insert as if all holds will be taken, then the keys' updates, last:
another process's batch for the same key waits on the key's row from its update to COMMIT.

A settle or release moves money only for the holds its own transaction deleted from
``ledger_holds`` (the claim): a hold already settled, released, or given back by the stale-hold
reaper applies nothing, so no commit, retried or ambiguous, can apply twice. A key's holds are
first tried as one debit of their sum, and one by one only when that fails.

A hold may bring new rows (``HoldOp.rows``: a submitted task's own row), written in the same
transaction if and only if the hold is taken: a task exists exactly when its money is held,
and its submit waits for one commit, not two.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import Dialect, bindparam, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.expression import BindParameter, Executable

from imagegate.db.engine import POSTGRES_PREFER_INDEXES
from imagegate.db.new_rows import NewRow, insert_rows
from imagegate.db.positional import positional_insert, positional_sql_in
from imagegate.db.tables import ApiKeyRow, LedgerRow, OpenHoldRow

RowKind = Literal["hold", "release", "charge"]
#: SQLAlchemy's text form of a naive UTC timestamp on SQLite, which `UtcDateTime` reads back.
SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a hold was not taken: the key's quota (None: unlimited) and what it has left."""

    quota_micros: int | None
    balance_micros: int
    exists: bool = True


@dataclass(slots=True)
class HoldOp:
    """Take ``amount`` from the key if it has that much; the future gets None or a `Refusal`.

    ``model`` and ``endpoint`` are kept with the open hold, for the request-log row the
    stale-hold reaper writes if the owning process dies before the request ends. ``rows`` are
    inserted in the same transaction if and only if the hold is taken.
    """

    key_id: str
    request_id: str
    amount: int
    model: str | None = None
    endpoint: str | None = None
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    future: asyncio.Future[Refusal | None] | None = None
    rows: tuple[NewRow, ...] = ()


@dataclass(slots=True)
class MoveOp:
    """Close the request's open hold: give ``delta`` back to the key and append ``rows``.

    The future gets True when this op closed the hold, False when it was already closed.
    """

    key_id: str
    request_id: str
    delta: int
    rows: tuple[tuple[RowKind, int], ...]
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    future: asyncio.Future[bool] | None = None


Op = HoldOp | MoveOp
#: Per op: a hold's None (taken) or `Refusal`; a move's True (applied) or False (already closed).
Outcome = Refusal | bool | None


class Plan:
    """A batch sorted into its statements; `outcomes` gets one entry per op."""

    def __init__(self, ops: list[Op], *, sqlite: bool, owner: str) -> None:
        self.ops = ops
        self.sqlite = sqlite
        self.owner = owner
        self.outcomes: list[Outcome] = [None] * len(ops)
        self.rows: list[tuple[Any, ...]] = []
        self.opened: list[tuple[Any, ...]] = []
        #: What the taken holds brought along (`HoldOp.rows`).
        self.new_rows: list[NewRow] = []
        self.moves: list[tuple[int, str]] = []
        self._moves: list[tuple[int, MoveOp]] = []
        holds: dict[str, list[tuple[int, HoldOp]]] = defaultdict(list)
        for index, op in enumerate(ops):
            if isinstance(op, MoveOp):
                self._moves.append((index, op))
            else:
                holds[op.key_id].append((index, op))
        self.claims = sorted({op.request_id for _, op in self._moves})
        # Sorted by key, so row locks are taken in one order by every process.
        self.keys = sorted({op.key_id for _, op in self._moves} | holds.keys())
        self.holds = sorted(holds.items())

    def claimed(self, request_ids: Iterable[str]) -> None:
        """Apply the moves whose open hold this transaction deleted; the others apply nothing."""
        won = set(request_ids)
        deltas: dict[str, int] = defaultdict(int)
        for index, op in self._moves:
            applied = op.request_id in won
            won.discard(op.request_id)  # one hold closes once, even if asked twice in a batch
            self.outcomes[index] = applied
            if applied:
                deltas[op.key_id] += op.delta
                self.rows.extend(self.row(op, kind, amount) for kind, amount in op.rows)
        self.moves = [(delta, key) for key, delta in sorted(deltas.items()) if delta]

    def row(self, op: Op, kind: RowKind, amount: int) -> tuple[Any, ...]:
        return (op.key_id, op.request_id, kind, amount, self.time(op.at))

    def time(self, at: datetime) -> Any:
        return at.strftime(SQLITE_TIME) if self.sqlite else at

    def settle_holds(
        self, holds: list[tuple[int, HoldOp]], taken: list[bool], refusal: Refusal | None
    ) -> None:
        for (index, op), ok in zip(holds, taken, strict=True):
            if ok:
                at = self.time(op.at)
                self.rows.append((op.key_id, op.request_id, "hold", -op.amount, at))
                self.opened.append(
                    (op.request_id, op.key_id, op.amount, self.owner, op.model, op.endpoint, at)
                )
                self.new_rows.extend(op.rows)
            else:
                self.outcomes[index] = refusal


def refusal_of(row: Any) -> Refusal:
    if row is None:
        return Refusal(None, 0, exists=False)
    return Refusal(None if row[0] is None else int(row[0]), int(row[1]))


async def apply_with_engine(engine: AsyncEngine, sql: Statements, plan: Plan) -> Plan:
    """Run ``plan`` in one transaction through SQLAlchemy; returns the plan that was applied.

    PostgreSQL first tries the batch as if every hold will be taken: the new rows go in first and
    the keys' rows are updated last, just before COMMIT, so each key's row lock (which every other
    process's batch for that key waits on) is held for two statements instead of five. When a
    debit is refused, that attempt is rolled back and the batch runs again in the order that
    decides each hold before writing its rows.
    """
    if sql.postgres:
        try:
            async with engine.begin() as connection:
                try:
                    taken = await _apply_optimistically(connection, sql, plan)
                except IntegrityError:
                    # A hold on a key that does not exist (its rows break the foreign key), or
                    # a request id held twice: the careful order tells those apart.
                    taken = False
                if taken:
                    return plan
                raise _DebitRefused  # rolls the attempt back
        except _DebitRefused:
            plan = Plan(plan.ops, sqlite=plan.sqlite, owner=plan.owner)
    async with engine.begin() as connection:
        await _apply(connection, sql, plan)
    return plan


class _DebitRefused(Exception):
    """A key could not cover the sum of its holds in an optimistic attempt."""


async def _apply_optimistically(connection: AsyncConnection, sql: Statements, plan: Plan) -> bool:
    """The batch with every hold taken and the keys' rows updated last; False: a debit failed
    (the caller rolls back)."""
    await _claim(connection, sql, plan)
    debits = [(key, sum(op.amount for _, op in holds)) for key, holds in plan.holds]
    for _key, holds in plan.holds:
        plan.settle_holds(holds, [True] * len(holds), None)
    await _insert_rows(connection, sql, plan)
    await _lock_keys(connection, sql, plan)
    if plan.moves:
        await connection.exec_driver_sql(sql.move, plan.moves)
    for key, total in debits:
        if not await _debit(connection, sql, key, total):
            return False
    return True


async def _apply(connection: AsyncConnection, sql: Statements, plan: Plan) -> None:
    await _lock_keys(connection, sql, plan)
    await _claim(connection, sql, plan)
    if plan.moves:
        await connection.exec_driver_sql(sql.move, plan.moves)
    for key, holds in plan.holds:
        amounts = [op.amount for _, op in holds]
        if len(holds) > 1 and await _debit(connection, sql, key, sum(amounts)):
            taken = [True] * len(holds)
        else:
            taken = [await _debit(connection, sql, key, amount) for amount in amounts]
        refusal = None
        if not all(taken):
            refusal = refusal_of((await connection.exec_driver_sql(sql.read, (key,))).first())
        plan.settle_holds(holds, taken, refusal)
    await _insert_rows(connection, sql, plan)


async def _lock_keys(connection: AsyncConnection, sql: Statements, plan: Plan) -> None:
    """PostgreSQL, several keys: lock their rows in id order, so two batches never deadlock."""
    if sql.lock is not None and len(plan.keys) > 1:
        await connection.execute(sql.lock, {"keys": plan.keys})


async def _claim(connection: AsyncConnection, sql: Statements, plan: Plan) -> None:
    if not plan.claims:
        return
    if sql.claim_any is not None:
        # The holds by primary key, not a scan of every open one (a burst opens thousands).
        await connection.exec_driver_sql(POSTGRES_PREFER_INDEXES)
        claimed = await connection.exec_driver_sql(sql.claim_any, (plan.claims,))
    else:
        claimed = await connection.execute(sql.claim, {"ids": plan.claims})
    plan.claimed(claimed.scalars())


async def _insert_rows(connection: AsyncConnection, sql: Statements, plan: Plan) -> None:
    if plan.rows:
        await connection.exec_driver_sql(sql.insert, plan.rows)
    if plan.opened:
        await connection.exec_driver_sql(sql.open, plan.opened)
    if plan.new_rows:
        await insert_rows(connection, plan.new_rows)


async def _debit(connection: AsyncConnection, sql: Statements, key: str, amount: int) -> bool:
    return bool((await connection.exec_driver_sql(sql.hold, (amount, key, amount))).rowcount == 1)


async def hold_is_open(engine: AsyncEngine, op: HoldOp, owner: str) -> bool:
    """Whether ``op``'s hold is in the database already (a commit whose answer was lost)."""
    query = select(OpenHoldRow.request_id).where(
        OpenHoldRow.request_id == op.request_id,
        OpenHoldRow.key_id == op.key_id,
        OpenHoldRow.amount_micros == op.amount,
        OpenHoldRow.owner == owner,
    )
    async with engine.connect() as connection:
        return (await connection.execute(query)).first() is not None


class Statements:
    """The batch's statements compiled once for the engine's dialect, with positional parameters.

    Compiled text run through ``exec_driver_sql`` skips SQLAlchemy's per-call compile cache
    lookups and per-row type processing, which cost more than the statements themselves here.
    """

    def __init__(self, dialect: Dialect) -> None:
        self.postgres = dialect.name == "postgresql"
        key, balance = ApiKeyRow.id, ApiKeyRow.balance_micros
        limited = ApiKeyRow.quota_micros.is_not(None)
        hold = (
            update(ApiKeyRow)
            .where(key == bindparam("key"), limited, balance >= bindparam("floor"))
            .values(balance_micros=balance - bindparam("amount"))
        )
        self.hold = positional_sql_in(hold, dialect, ("amount", "key", "floor"))
        move = update(ApiKeyRow).where(key == bindparam("key"))
        move = move.values(balance_micros=balance + bindparam("delta"))
        self.move = positional_sql_in(move, dialect, ("delta", "key"))
        ledger_columns = ("key_id", "request_id", "kind", "amount_micros", "created_at")
        self.insert = positional_insert(LedgerRow, dialect, ledger_columns)
        self.open = positional_insert(
            OpenHoldRow,
            dialect,
            ("request_id", "key_id", "amount_micros", "owner", "model", "endpoint", "created_at"),
        )
        read = select(ApiKeyRow.quota_micros, balance).where(key == bindparam("key"))
        self.read = positional_sql_in(read, dialect, ("key",))
        ids: BindParameter[list[str]] = bindparam("ids", expanding=True)
        held = OpenHoldRow.request_id
        self.claim: Executable = delete(OpenHoldRow).where(held.in_(ids)).returning(held)
        self.lock: Executable | None = None
        #: asyncpg: the claim with one array parameter, a fixed text (no per-batch IN expansion).
        self.claim_any: str | None = None
        if dialect.name == "postgresql" and dialect.driver == "asyncpg":
            table = OpenHoldRow.__tablename__
            self.claim_any = f"DELETE FROM {table} WHERE request_id = ANY($1::varchar[]) RETURNING request_id"
        if dialect.name == "postgresql":
            keys: BindParameter[str] = bindparam("keys", expanding=True)
            self.lock = select(key).where(key.in_(keys)).order_by(key).with_for_update()
