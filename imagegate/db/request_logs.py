"""The request log: one row per API request, written in batches off the request path.

The middleware hands each finished :class:`~imagegate.observability.RequestRecord` to
:meth:`RequestLogWriter.submit`, which only appends to an in-memory queue; a background task
writes the queue with one ``executemany`` every ``interval_s`` (or sooner once ``batch_size``
rows wait). ``stop()`` writes whatever is still queued, so a clean shutdown loses nothing.
A batch the database refuses is split in halves until the rows it refuses alone are found;
those are logged and dropped, the rest written, so one bad row never stalls the log. When the
database itself does not answer, the batch waits in the queue instead.

    writer = RequestLogWriter(engine, retention_days=90)
    await writer.start()
    writer.submit(record, started_at=time.time())   # never blocks, never raises
    await writer.stop()                             # flushes the queue
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import operator
import time
from collections import deque
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Dialect,
    Float,
    Index,
    Integer,
    String,
    Text,
    bindparam,
    delete,
    insert,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.orm import Mapped, mapped_column

from imagegate.db.engine import write_gate
from imagegate.db.positional import positional_insert, positional_sql_in
from imagegate.db.tables import Base, RequestDetailRow, UtcDateTime
from imagegate.money import to_micros
from imagegate.observability import RequestRecord

logger = logging.getLogger("imagegate.request_log")

RETENTION_SWEEP_INTERVAL_S = 3600.0


class RequestLogRow(Base):
    """One API request as it ended: who, what, where it went, how it went and what it cost."""

    __tablename__ = "request_logs"
    # Newest-first pages and time-range filters walk (time, id); per-key and per-model listings
    # and usage sums start from the key or model.
    __table_args__ = (
        Index("ix_request_logs_time_id", "time", "id"),
        Index("ix_request_logs_key_id_time", "key_id", "time"),
        Index("ix_request_logs_model_time", "model", "time"),
        # The console's charts sum these columns over a time range: with all of them in the index
        # the sums read the index alone, never the wide rows (migration 0004).
        Index(
            "ix_request_logs_time_sums",
            "time",
            "status",
            "n",
            "cost_micros",
            "latency_ms",
            "model",
            "channel",
            "error_code",
        ),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    time: Mapped[datetime] = mapped_column(UtcDateTime)
    method: Mapped[str] = mapped_column(String(16))
    endpoint: Mapped[str] = mapped_column(String(300))
    key_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    group: Mapped[str | None] = mapped_column(String(200), nullable=True)
    model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    channel: Mapped[str | None] = mapped_column(String(200), nullable=True)
    upstream_model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    upstream_request_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    stream: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    n: Mapped[int | None] = mapped_column(Integer, nullable=True)
    size: Mapped[str | None] = mapped_column(String(32), nullable=True)
    quality: Mapped[str | None] = mapped_column(String(32), nullable=True)
    user: Mapped[str | None] = mapped_column(String(300), nullable=True)
    client_ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    status: Mapped[int] = mapped_column(Integer)
    latency_ms: Mapped[float] = mapped_column(Float)
    ttfb_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    # 64-bit: an upstream's token count is not ours to bound, and must not fail the insert.
    input_tokens: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    output_tokens: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # Integer micro-USD, like the ledger: exact sums on every backend.
    cost_micros: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    error_type: Mapped[str | None] = mapped_column(String(100), nullable=True)
    error_code: Mapped[str | None] = mapped_column(String(100), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON(none_as_null=True), nullable=True)


table = RequestLogRow.__table__
# Row layout for the batched insert, in table column order.
_COLUMNS = tuple(column.name for column in table.columns)
_in_column_order = operator.itemgetter(*_COLUMNS)
_TEXT_LIMITS = {"user": 300, "endpoint": 300, "upstream_request_id": 200, "model": 200}
_MAX_ERROR_MESSAGE = 4000
_BIGINT = range(-(2**63), 2**63)
#: Status of a request whose process died before it ended (nginx's "client closed request").
ABORTED_STATUS = 499
ABORTED_MESSAGE = (
    "The gateway process serving this request stopped before the request finished; "
    "nothing was charged and its hold was released."
)


def record_to_row(record: RequestRecord, started_at: float, *, sqlite: bool) -> tuple[Any, ...]:
    """The table row for a finished record, as the database driver takes it (``_COLUMNS`` order).

    Values are made driver-ready here rather than by SQLAlchemy's per-row type processing,
    which costs several times more per row than the insert itself.
    """
    moment = datetime.fromtimestamp(started_at, UTC)
    attempts = orjson.dumps(record.attempts).decode() if record.attempts else None
    error_message = record.error_message[:_MAX_ERROR_MESSAGE] if record.error_message else None
    values: dict[str, Any] = {
        "id": record.request_id,
        "time": sqlite_time(moment) if sqlite else moment,
        "method": record.method,
        "endpoint": record.endpoint,
        "key_id": record.key_id,
        "group": record.group,
        "model": record.model,
        "channel": record.channel,
        "upstream_model": record.upstream_model,
        "upstream_request_id": record.upstream_request_id,
        "stream": record.stream,
        "n": record.n,
        "size": record.size,
        "quality": record.quality,
        "user": record.user,
        "client_ip": record.client_ip,
        "status": record.status,
        "latency_ms": record.latency_ms,
        "ttfb_ms": record.ttfb_ms,
        "input_tokens": _storable_count(record.input_tokens),
        "output_tokens": _storable_count(record.output_tokens),
        "cost_micros": to_micros(record.cost_usd) if record.cost_usd is not None else None,
        "error_type": record.error_type,
        "error_code": record.error_code,
        "error_message": error_message,
        "attempts": attempts,
    }
    # Client-chosen text must not fail a whole batch on PostgreSQL's length checks.
    for name, limit in _TEXT_LIMITS.items():
        value = values[name]
        if value is not None and len(value) > limit:
            values[name] = value[:limit]
    row: tuple[Any, ...] = _in_column_order(values)
    return row


def _storable_count(value: object) -> int | None:
    """A token count as a 64-bit integer; None for what no column could hold (an upstream's
    absurd number must not cost the request its log row)."""
    if isinstance(value, int) and not isinstance(value, bool) and value in _BIGINT:
        return value
    return None


def aborted_log_values(
    request_id: str,
    key_id: str | None,
    model: str | None,
    endpoint: str | None,
    started: datetime,
    now: datetime,
) -> dict[str, Any]:
    """The log row (column -> value) of a request whose process died mid-request."""
    values: dict[str, Any] = dict.fromkeys(_COLUMNS)
    values.update(
        id=request_id,
        time=started,
        method="POST",
        endpoint=(endpoint or "unknown")[: _TEXT_LIMITS["endpoint"]],
        key_id=key_id,
        model=model,
        status=ABORTED_STATUS,
        latency_ms=max(0.0, (now - started).total_seconds() * 1000),
        error_type="server_error",
        error_code="aborted",
        error_message=ABORTED_MESSAGE,
    )
    return values


def insert_statement(dialect: Dialect) -> str:
    """``INSERT INTO request_logs (…) VALUES (…)`` with positional parameters in ``_COLUMNS`` order."""
    return positional_insert(RequestLogRow, dialect, _COLUMNS)


#: Rows per INSERT on SQLite: 100 rows of ~30 columns stay far below SQLite's bound of 32,766
#: parameters (a build with a lower one refuses the statement, and the batch is halved).
SQLITE_ROWS_PER_STATEMENT = 100


@functools.cache
def multi_row_insert(single_row_sql: str, rows: int, suffix: str = "") -> str:
    """``INSERT … VALUES (?, …)`` made into one statement inserting ``rows`` rows (``suffix``,
    e.g. an ``ON CONFLICT`` clause, after them)."""
    head, separator, one_row = single_row_sql.partition(" VALUES ")
    return head + separator + ", ".join([one_row] * rows) + suffix


async def _insert_many(
    connection: AsyncConnection, one_row_sql: str, rows: list[tuple[Any, ...]], suffix: str = ""
) -> None:
    """Insert ``rows`` (SQLite), SQLITE_ROWS_PER_STATEMENT of them per statement."""
    for start in range(0, len(rows), SQLITE_ROWS_PER_STATEMENT):
        chunk = rows[start : start + SQLITE_ROWS_PER_STATEMENT]
        values = tuple(itertools.chain.from_iterable(chunk))
        await connection.exec_driver_sql(multi_row_insert(one_row_sql, len(chunk), suffix), values)


_DETAIL_COLUMNS = ("request_id", "time", "prompt", "params", "inputs", "outputs")


@functools.cache
def sqlite_details_insert() -> tuple[str, str]:
    """The request details' insert on SQLite as SQL text: its one-row ``INSERT … VALUES (…)`` and
    the ``ON CONFLICT`` clause that follows the rows, parameters in ``_DETAIL_COLUMNS`` order.
    Built once: the ORM insert given a list of rows was compiled anew for every batch."""
    statement = details_insert("sqlite").values({name: bindparam(name) for name in _DETAIL_COLUMNS})
    sql = positional_sql_in(statement, sqlite.dialect(), _DETAIL_COLUMNS)
    rows_part, conflict, rest = sql.partition(" ON CONFLICT")
    return rows_part, conflict + rest


def sqlite_time(moment: datetime) -> str:
    """How SQLite keeps a time: naive UTC text in SQLAlchemy's format, which UtcDateTime reads back."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def sqlite_detail_values(detail: dict[str, Any]) -> tuple[Any, ...]:
    """A ``detail_row`` as SQLite stores it: the time as text, JSON as text (NULL for None)."""
    as_json = [detail[name] for name in _DETAIL_COLUMNS[3:]]
    return (
        detail["request_id"],
        sqlite_time(detail["time"]),
        detail["prompt"],
        *(None if value is None else orjson.dumps(value).decode() for value in as_json),
    )


class RequestLogWriter:
    """Batches request records into ``request_logs``; see the module docstring."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        retention_days: int = 0,
        batch_size: int = 500,
        interval_s: float = 0.5,
        max_queue: int = 100_000,
    ) -> None:
        self._engine = engine
        self._sqlite = engine.dialect.name == "sqlite"
        self._insert_sql = insert_statement(engine.dialect)
        self._insert_details = details_insert(engine.dialect.name)
        self.retention_days = retention_days
        self.batch_size = batch_size
        self.interval_s = interval_s
        self.max_queue = max_queue
        self._queue: deque[tuple[RequestRecord, float]] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._write_lock = asyncio.Lock()
        #: Records refused because the queue was full (the database could not keep up).
        self.dropped = 0
        self.written = 0

    def submit(self, record: RequestRecord, started_at: float) -> None:
        """Queue a finished request's record. O(1); drops (and counts) when the queue is full."""
        queue = self._queue
        if len(queue) >= self.max_queue:
            self.dropped += 1
            return
        queue.append((record, started_at))
        if len(queue) >= self.batch_size:
            self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._queue)

    async def start(self) -> None:
        await self.delete_expired()
        self._task = asyncio.create_task(self._run(), name="imagegate-request-log")

    async def stop(self) -> None:
        """Stop the background task and write everything still queued."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()
        if self._queue:
            logger.error("%d request log rows could not be written at shutdown", len(self._queue))

    async def flush(self) -> None:
        """Write every queued record now (tests, shutdown)."""
        while self._queue:
            if not await self._write_batch():
                return

    async def delete_expired(self) -> int:
        """Delete rows older than the retention period; returns how many went."""
        if self.retention_days <= 0:
            return 0
        cutoff = datetime.now(UTC) - timedelta(days=self.retention_days)
        try:
            async with self._engine.begin() as connection:
                result = await connection.execute(delete(RequestLogRow).where(RequestLogRow.time < cutoff))
        except Exception:
            logger.exception("deleting expired request log rows failed")
            return 0
        return result.rowcount or 0

    async def _run(self) -> None:
        next_sweep = time.monotonic() + RETENTION_SWEEP_INTERVAL_S
        while True:
            if len(self._queue) < self.batch_size:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.interval_s)
            self._wake.clear()
            await self.flush()
            if time.monotonic() >= next_sweep:
                next_sweep = time.monotonic() + RETENTION_SWEEP_INTERVAL_S
                await self.delete_expired()

    async def _write_batch(self) -> bool:
        """Write up to one batch; False (rows kept queued) when the database does not answer."""
        async with self._write_lock:
            count = min(len(self._queue), self.batch_size)
            if count == 0:
                return True
            batch = [self._queue.popleft() for _ in range(count)]
            rows = self._rows(batch)
            done: set[int] = set()
            try:
                await self._write_rows(rows, done)
            except Exception:
                logger.exception("writing %d request log rows failed; will retry", len(rows) - len(done))
                left = [item for index, (item, _) in enumerate(rows) if index not in done]
                # Back to the front, oldest first, as far as the bound allows.
                room = max(0, self.max_queue - len(self._queue))
                self.dropped += len(left) - min(len(left), room)
                self._queue.extendleft(reversed(left[:room]))
                return False
            return True

    def _rows(self, batch: list[tuple[RequestRecord, float]]) -> list[tuple[_Item, tuple[Any, ...]]]:
        rows = []
        for item in batch:
            record, started = item
            try:
                rows.append((item, record_to_row(record, started, sqlite=self._sqlite)))
            except Exception:
                logger.exception("request log record %s is malformed; dropped", record.request_id)
                self.dropped += 1
        return rows

    async def _write_rows(
        self, rows: list[tuple[_Item, tuple[Any, ...]]], done: set[int], offset: int = 0
    ) -> None:
        """Insert ``rows``, halving a refused batch until each refused row stands alone; adds the
        indexes of rows written or dropped to ``done``. Raises when the database is not answering."""
        if not rows:
            return
        details = [detail_row(record, started) for (record, started), _ in rows if _has_detail(record)]
        try:
            async with self._engine.begin() as connection:
                if self._sqlite:
                    await self._insert_sqlite(connection, [row for _, row in rows], details)
                else:
                    await connection.exec_driver_sql(self._insert_sql, [row for _, row in rows])
                    if details:
                        await connection.execute(self._insert_details, details)
        except Exception as error:
            if len(rows) > 1:
                middle = len(rows) // 2
                await self._write_rows(rows[:middle], done, offset)
                await self._write_rows(rows[middle:], done, offset + middle)
                return
            if not await self._database_answers():
                raise
            logger.error("request log row %s was refused; dropped: %s", rows[0][1][0], error)
            self.dropped += 1
        else:
            self.written += len(rows)
        done.update(range(offset, offset + len(rows)))

    async def _insert_sqlite(
        self, connection: AsyncConnection, rows: list[tuple[Any, ...]], details: list[dict[str, Any]]
    ) -> None:
        """Many rows per statement: ``executemany`` hands the GIL to and from the database thread
        once per row, which cost the event loop more than the inserts themselves."""
        await _insert_many(connection, self._insert_sql, rows)
        one_row, conflict = sqlite_details_insert()
        await _insert_many(
            connection, one_row, [sqlite_detail_values(detail) for detail in details], conflict
        )

    async def _database_answers(self) -> bool:
        """Whether the database takes a plain row (inserted, then rolled back): if it does, a row
        refused alone is that row's fault; if not, the database or the table is what fails."""
        probe = dict.fromkeys(_COLUMNS)
        probe.update(id="probe", time=datetime.now(UTC), method="GET", endpoint="/", status=0, latency_ms=0.0)
        try:
            async with (
                write_gate(self._engine),
                self._engine.connect() as connection,
                connection.begin() as transaction,
            ):
                await connection.execute(insert(RequestLogRow).values(**probe))
                await transaction.rollback()
        except Exception:
            return False
        return True


_Item = tuple[RequestRecord, float]


def details_insert(dialect: str) -> Any:
    """The request details' insert; a row already there (the console's own, with stored uploads) wins."""
    if dialect == "postgresql":
        return postgresql.insert(RequestDetailRow).on_conflict_do_nothing(index_elements=["request_id"])
    return sqlite.insert(RequestDetailRow).on_conflict_do_nothing(index_elements=["request_id"])


def _has_detail(record: RequestRecord) -> bool:
    return record.detail is not None and record.detail.worth_keeping


def detail_row(record: RequestRecord, started_at: float) -> dict[str, Any]:
    detail = record.detail
    assert detail is not None
    return {
        "request_id": record.request_id,
        "time": datetime.fromtimestamp(started_at, UTC),
        "prompt": detail.prompt[:32_000],
        "params": detail.params or None,
        "inputs": detail.inputs or None,
        "outputs": detail.outputs or None,
    }
