"""The ledger's batches on a SQLite file: one ``sqlite3`` connection in one thread of its own.

Through aiosqlite every statement costs three thread hops; here a whole batch costs one, the
cost that dominated a billed request. The statements and their order are `ledger_sql`'s.
"""

from __future__ import annotations

import asyncio
import sqlite3
from concurrent.futures import ThreadPoolExecutor

import orjson
from sqlalchemy import Dialect
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

from imagegate.billing.ledger_sql import Plan, Statements, refusal_of
from imagegate.db.engine import SQLITE_BUSY_TIMEOUT_MS
from imagegate.db.new_rows import insert_rows_sqlite
from imagegate.db.tables import OpenHoldRow

_CLAIM = (
    f"DELETE FROM {OpenHoldRow.__tablename__} WHERE request_id IN (SELECT value FROM json_each(?)) "
    "RETURNING request_id"
)


class SqliteFileWriter:
    """Runs plans on a SQLite file through one ``sqlite3`` connection in one thread of its own.

    ``BEGIN IMMEDIATE`` takes the database's write lock first (waiting up to the busy timeout
    for other processes), so the conditional holds decide against the latest committed balance.
    Errors come back as SQLAlchemy's `DBAPIError` types, as from the engine path.
    """

    def __init__(self, path: str, sql: Statements, dialect: Dialect) -> None:
        self._path = path
        self._sql = sql
        #: The engine's, so that rows brought by holds are written as the engine would write them.
        self._dialect = dialect
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
        if plan.claims:
            # One fixed statement, the ids as one JSON array: compiled once, whatever the count.
            cursor = connection.execute(_CLAIM, (orjson.dumps(plan.claims).decode(),))
            plan.claimed(row[0] for row in cursor.fetchall())
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
        if plan.opened:
            connection.executemany(sql.open, plan.opened)
        if plan.new_rows:
            insert_rows_sqlite(self._dialect, connection, plan.new_rows)

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
