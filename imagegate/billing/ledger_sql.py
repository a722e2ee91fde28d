"""One batch of ledger operations as one database transaction, on any engine or on a SQLite file.

`apply_with_engine` runs the batch through SQLAlchemy (PostgreSQL, in-memory SQLite). A SQLite
file gets `SqliteFileWriter`: its own ``sqlite3`` connection in a thread of its own, so a whole
batch is one thread hop instead of three hops per statement through aiosqlite, the cost that
dominated a billed request. Both run the same statements in the same order:

    moves     UPDATE api_keys SET balance = balance + :delta WHERE id = :key     (executemany)
    holds     UPDATE api_keys SET balance = balance - :amount
              WHERE id = :key AND quota IS NOT NULL AND balance >= :amount     (row count decides)
    rows      INSERT INTO ledger (…)                                           (executemany)

A key's holds are first tried as one debit of their sum, and one by one only when that fails.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import Dialect, bindparam, insert, select, update
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import BindParameter, ClauseElement, Executable

from imagegate.db.engine import SQLITE_BUSY_TIMEOUT_MS
from imagegate.db.tables import ApiKeyRow, LedgerRow

RowKind = Literal["hold", "release", "charge"]
#: SQLAlchemy's text form of a naive UTC timestamp on SQLite, which `UtcDateTime` reads back.
_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a hold was not taken: the key's quota (None: unlimited) and what it has left."""

    quota_micros: int | None
    balance_micros: int
    exists: bool = True


@dataclass(slots=True)
class HoldOp:
    """Take ``amount`` from the key if it has that much; the future gets None or a `Refusal`."""

    key_id: str
    request_id: str | None
    amount: int
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    future: asyncio.Future[Refusal | None] | None = None


@dataclass(slots=True)
class MoveOp:
    """Give ``delta`` back to the key and append ``rows`` (kind, amount) to its ledger."""

    key_id: str
    request_id: str | None
    delta: int
    rows: tuple[tuple[RowKind, int], ...]
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    future: asyncio.Future[None] | None = None


Op = HoldOp | MoveOp


class Plan:
    """A batch sorted into its statements; `outcomes` gets one entry per op (None: done/held)."""

    def __init__(self, ops: list[Op], *, sqlite: bool) -> None:
        self.sqlite = sqlite
        self.outcomes: list[Refusal | None] = [None] * len(ops)
        self.rows: list[tuple[Any, ...]] = []
        deltas: dict[str, int] = defaultdict(int)
        holds: dict[str, list[tuple[int, HoldOp]]] = defaultdict(list)
        for index, op in enumerate(ops):
            if isinstance(op, MoveOp):
                deltas[op.key_id] += op.delta
                self.rows.extend(self.row(op, kind, amount) for kind, amount in op.rows)
            else:
                holds[op.key_id].append((index, op))
        # Sorted by key, so row locks are taken in one order by every process.
        self.keys = sorted(deltas.keys() | holds.keys())
        self.moves = [(delta, key) for key, delta in sorted(deltas.items()) if delta]
        self.holds = sorted(holds.items())

    def row(self, op: Op, kind: RowKind, amount: int) -> tuple[Any, ...]:
        at: Any = op.at.strftime(_SQLITE_TIME) if self.sqlite else op.at
        return (op.key_id, op.request_id, kind, amount, at)

    def settle_holds(
        self, holds: list[tuple[int, HoldOp]], taken: list[bool], refusal: Refusal | None
    ) -> None:
        for (index, op), ok in zip(holds, taken, strict=True):
            if ok:
                self.rows.append(self.row(op, "hold", -op.amount))
            else:
                self.outcomes[index] = refusal


def refusal_of(row: Any) -> Refusal:
    if row is None:
        return Refusal(None, 0, exists=False)
    return Refusal(None if row[0] is None else int(row[0]), int(row[1]))


async def apply_with_engine(engine: AsyncEngine, sql: Statements, plan: Plan) -> None:
    """Run ``plan`` in one transaction through SQLAlchemy."""
    async with engine.begin() as connection:
        if sql.lock is not None and len(plan.keys) > 1:
            await connection.execute(sql.lock, {"keys": plan.keys})
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
        if plan.rows:
            await connection.exec_driver_sql(sql.insert, plan.rows)


async def _debit(connection: AsyncConnection, sql: Statements, key: str, amount: int) -> bool:
    return bool((await connection.exec_driver_sql(sql.hold, (amount, key, amount))).rowcount == 1)


class SqliteFileWriter:
    """Runs plans on a SQLite file through one ``sqlite3`` connection in one thread of its own.

    ``BEGIN IMMEDIATE`` takes the database's write lock first (waiting up to the busy timeout
    for other processes), so the conditional holds decide against the latest committed balance.
    Errors come back as SQLAlchemy's `DBAPIError` types, as from the engine path.
    """

    def __init__(self, path: str, sql: Statements) -> None:
        self._path = path
        self._sql = sql
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="imagegate-ledger")
        self._connection: sqlite3.Connection | None = None

    async def apply(self, plan: Plan) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, self._apply, plan)

    async def close(self) -> None:
        """Close the connection (a later batch opens it again)."""
        await asyncio.get_running_loop().run_in_executor(self._executor, self._close)

    def _apply(self, plan: Plan) -> None:
        try:
            connection = self._connect()
            connection.execute("BEGIN IMMEDIATE")
            try:
                self._run(connection, plan)
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise
        except sqlite3.Error as error:
            raise DBAPIError.instance(None, None, error, sqlite3.Error) from error

    def _run(self, connection: sqlite3.Connection, plan: Plan) -> None:
        sql = self._sql
        if plan.moves:
            connection.executemany(sql.move, plan.moves)
        for key, holds in plan.holds:
            amounts = [op.amount for _, op in holds]
            total = sum(amounts)
            if len(holds) > 1 and connection.execute(sql.hold, (total, key, total)).rowcount == 1:
                taken = [True] * len(holds)
            else:
                taken = [connection.execute(sql.hold, (a, key, a)).rowcount == 1 for a in amounts]
            refusal = None
            if not all(taken):
                refusal = refusal_of(connection.execute(sql.read, (key,)).fetchone())
            plan.settle_holds(holds, taken, refusal)
        if plan.rows:
            connection.executemany(sql.insert, plan.rows)

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            # Autocommit mode: the transaction is exactly the BEGIN … COMMIT written above.
            connection = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            # The same settings as the engine's connections (imagegate.db.engine).
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute("PRAGMA foreign_keys=ON")
            self._connection = connection
        return self._connection

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def sqlite_file(url: URL) -> str | None:
    """The path of the SQLite file behind ``url``; None for other databases and in-memory ones."""
    database = url.database or ""
    uri = str(url.query.get("uri", "")).lower() in {"true", "1"}
    if url.get_backend_name() != "sqlite" or uri or database in ("", ":memory:"):
        return None
    return None if database.startswith("file:") else database


class Statements:
    """The batch's statements compiled once for the engine's dialect, with positional parameters.

    Compiled text run through ``exec_driver_sql`` skips SQLAlchemy's per-call compile cache
    lookups and per-row type processing, which cost more than the statements themselves here.
    """

    def __init__(self, dialect: Dialect) -> None:
        key, balance = ApiKeyRow.id, ApiKeyRow.balance_micros
        limited = ApiKeyRow.quota_micros.is_not(None)
        hold = (
            update(ApiKeyRow)
            .where(key == bindparam("key"), limited, balance >= bindparam("floor"))
            .values(balance_micros=balance - bindparam("amount"))
        )
        self.hold = _positional(hold, dialect, ("amount", "key", "floor"))
        move = update(ApiKeyRow).where(key == bindparam("key"))
        move = move.values(balance_micros=balance + bindparam("delta"))
        self.move = _positional(move, dialect, ("delta", "key"))
        columns = ("key_id", "request_id", "kind", "amount_micros", "created_at")
        self.insert = _positional(
            insert(LedgerRow).values({name: bindparam(name) for name in columns}), dialect, columns
        )
        read = select(ApiKeyRow.quota_micros, balance).where(key == bindparam("key"))
        self.read = _positional(read, dialect, ("key",))
        self.lock: Executable | None = None
        if dialect.name == "postgresql":
            keys: BindParameter[str] = bindparam("keys", expanding=True)
            self.lock = select(key).where(key.in_(keys)).order_by(key).with_for_update()


def _positional(statement: ClauseElement, dialect: Dialect, order: tuple[str, ...]) -> str:
    compiled = statement.compile(dialect=dialect)
    assert isinstance(compiled, SQLCompiler)
    if tuple(compiled.positiontup or ()) != order:
        raise RuntimeError(f"ledger statement binds {compiled.positiontup}, expected {order}")
    return str(compiled)
