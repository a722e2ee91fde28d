"""The async database engine: SQLite for one box, PostgreSQL (asyncpg) for many replicas.

    engine = create_engine(settings.resolved_database_url)
    await ping(engine)
    ...
    await engine.dispose()

The engine is owned by whoever creates it (the app's lifespan, a CLI command, a migration run);
nothing here is a global.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
import weakref
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

# Long enough to ride out a concurrent writer (SQLite allows one at a time), short enough that
# a wedged lock surfaces as an error rather than a hung request.
SQLITE_BUSY_TIMEOUT_MS = 5000

# Sized so that a busy process keeps reusing its connections: past the pool's size, overflow
# connections are closed as soon as they are returned, and each new one costs PostgreSQL a
# backend process, asyncpg its type introspection and every statement a fresh prepare. With 10
# + 20, a burst of task submits and runs spent more PostgreSQL CPU on that churn than on the
# queries (bench/tasks.py --postgres: 262 tasks/s, 385 with 30 + 10). Two processes stay at 80
# connections, under PostgreSQL's default of 100.
POSTGRES_POOL_SIZE = 30
POSTGRES_MAX_OVERFLOW = 10
#: A pooled PostgreSQL connection is checked before use only once it lay unused this long.
PING_AFTER_IDLE_S = 10.0


def create_engine(url: str, *, ping_after_idle_s: float = PING_AFTER_IDLE_S) -> AsyncEngine:
    """An `AsyncEngine` for ``url``, tuned for the backend it names.

    SQLite: the parent folder is created, and every connection runs in WAL mode (readers never
    block the writer) with a busy timeout instead of failing at once on a locked database.
    PostgreSQL: a bounded pool whose connections are checked before use once they lay unused
    ``ping_after_idle_s`` (see :func:`_ping_when_idle`), since a gateway outlives database
    restarts and idle-connection reapers.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed)
    if parsed.get_backend_name() != "postgresql":
        return create_async_engine(parsed, pool_pre_ping=True)
    engine = create_async_engine(parsed, pool_size=POSTGRES_POOL_SIZE, max_overflow=POSTGRES_MAX_OVERFLOW)
    _ping_when_idle(engine, ping_after_idle_s)
    return engine


def _ping_when_idle(engine: AsyncEngine, idle_s: float) -> None:
    """Ping a pooled connection at checkout only if it lay unused ``idle_s`` or longer.

    SQLAlchemy's ``pool_pre_ping`` pings at every checkout: one more round trip per transaction,
    which under a burst of tasks cost ~10 % of a process's throughput (bench/tasks.py
    --postgres). A connection returned moments ago is alive; one that lay idle may have been
    closed by a restart or a reaper, and a failed ping makes the pool replace it
    (``DisconnectionError``) before anyone uses it.
    """
    dialect = engine.dialect

    def returned(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info["returned_at"] = time.monotonic()

    def taken(dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
        returned_at = record.info.get("returned_at")
        if returned_at is None or time.monotonic() - returned_at < idle_s:
            return  # new (it just connected), or in use a moment ago
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as error:
            raise DisconnectionError("the pooled connection no longer answers") from error

    event.listen(engine.sync_engine.pool, "checkin", returned)
    event.listen(engine.sync_engine.pool, "checkout", taken)


async def ping(engine: AsyncEngine) -> None:
    """Raise if the database cannot answer a trivial query (readiness checks, startup)."""
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


#: For the rest of a PostgreSQL transaction, tables are read through their indexes, in index
#: order, whatever the planner believes of them. Its statistics lag a burst by a minute or more
#: (until autovacuum analyzes the table), and a statement's cached plan is made on its sixth run:
#: made while a burst filled an empty queue, or believing three tasks queued when there were
#: 2,000, a claim scanned or sorted every queued row (2 to 15 ms instead of 0.3), and closing
#: holds scanned every open one. For statements that look rows up by key or read an index's
#: first entries, where an index is always the right way.
POSTGRES_PREFER_INDEXES = (
    "SELECT set_config('enable_seqscan', 'off', true), set_config('enable_bitmapscan', 'off', true), "
    "set_config('enable_sort', 'off', true)"
)


class SqliteEngine(AsyncEngine):
    """An engine on SQLite whose write transactions queue in this process before they start.

    SQLite has one writer. Two transactions of one process that both write meet in SQLite's busy
    handler, which polls with sleeps of 1 to 100 ms: under a burst of task submits, with ledger
    batches and request-log writes beside them, those sleeps made a submit's slowest latencies
    (p99 114 ms against 72 with this queue, bench/tasks.py). Here every ``begin()`` first takes
    this process's gate, a FIFO asyncio lock, so the next writer starts as the previous one
    ends. Writers in other processes still meet in the busy handler. A write outside
    ``begin()`` (the ledger's own ``sqlite3`` thread) takes the same gate via :func:`write_gate`;
    read-only work uses ``connect()`` and never waits for it.
    """

    def __init__(self, sync_engine: Any) -> None:
        super().__init__(sync_engine)
        # One lock per event loop: an asyncio lock belongs to the loop it first waited on.
        self._gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    def write_gate(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        gate = self._gates.get(loop)
        if gate is None:
            gate = self._gates[loop] = asyncio.Lock()
        return gate

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        async with self.write_gate(), super().begin() as connection:
            yield connection


def write_gate(engine: AsyncEngine) -> contextlib.AbstractAsyncContextManager[Any]:
    """What a write outside ``engine.begin()`` holds while it runs: SQLite's in-process queue of
    writers (:class:`SqliteEngine`); nothing on other databases, which lock rows, not the file."""
    if isinstance(engine, SqliteEngine):
        return engine.write_gate()
    return contextlib.nullcontext()


def _sqlite_engine(url: URL) -> AsyncEngine:
    bind_none_and_bools_directly()
    database = url.database or ""
    if _is_file_database(url):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = SqliteEngine(create_async_engine(url).sync_engine)
    event.listen(engine.sync_engine, "connect", _configure_sqlite_connection)
    return engine


def bind_none_and_bools_directly() -> None:
    """Give sqlite3 ready adapters for None and bools, the values it binds most slowly.

    Python's sqlite3 binds str, int, float and bytearray as they are; any other value (None and
    bools among them) is first offered to adapters. With none registered for its type, it asks
    the protocol class for ``__adapt__``, and that failed lookup raises and formats an
    AttributeError before the value is bound after all: 0.3 µs per NULL, and a request log row
    has a dozen of them. These adapters bind exactly what sqlite3 would have (NULL, and 0 or 1).
    The registry is the sqlite3 module's, for the whole process; registering twice is harmless.
    """
    sqlite3.register_adapter(type(None), _unchanged)
    sqlite3.register_adapter(bool, int)


def _unchanged(value: None) -> None:
    return value


def _is_file_database(url: URL) -> bool:
    database = url.database or ""
    uri = str(url.query.get("uri", "")).lower() in {"true", "1"}
    return bool(database) and database != ":memory:" and not database.startswith("file:") and not uri


def _configure_sqlite_connection(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # Pragmas are per connection (journal_mode persists in the file, the others do not), so they
    # run on every new pooled connection rather than once at startup.
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        # NORMAL is durable across application crashes in WAL mode; only an OS crash can lose
        # the last commits, which is the usual trade for a several-fold faster commit.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()
