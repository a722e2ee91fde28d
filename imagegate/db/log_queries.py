"""Reading the request log: filtered newest-first pages, one request by id, usage sums.

Pages are keyset-paginated on ``(time, id)``: a cursor names the last row seen, and the next page
is everything strictly older. Rows written meanwhile are newer, so they never shift a page:
no duplicates and no gaps however long a reader takes.

    page = await list_logs(engine, LogFilter(model="gpt-image-2", status="error"), limit=50)
    more = await list_logs(engine, LogFilter(model="gpt-image-2", status="error"), cursor=page.next_cursor)
    days = await usage(engine, LogFilter(since=datetime(2026, 1, 1, tzinfo=UTC)))
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Select, and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from imagegate.db.request_logs import RequestLogRow
from imagegate.errors import InvalidRequest

_STATUS_CLASSES = {"1xx": 100, "2xx": 200, "3xx": 300, "4xx": 400, "5xx": 500}
failed = _failed = or_(RequestLogRow.status >= 400, RequestLogRow.error_code.is_not(None))


@dataclass(frozen=True, slots=True)
class LogFilter:
    key_id: str | None = None
    model: str | None = None
    #: An exact status ("429"), a class ("5xx"), "error" (failed in any way) or "ok".
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    size: str | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        where: list[ColumnElement[bool]] = []
        if self.key_id is not None:
            where.append(RequestLogRow.key_id == self.key_id)
        if self.model is not None:
            where.append(RequestLogRow.model == self.model)
        if self.since is not None:
            where.append(RequestLogRow.time >= self.since)
        if self.until is not None:
            where.append(RequestLogRow.time < self.until)
        if self.status is not None:
            where.append(_status_condition(self.status))
        if self.size is not None:
            where.append(RequestLogRow.size == self.size)
        return where


@dataclass(frozen=True, slots=True)
class LogPage:
    rows: list[dict[str, Any]]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class UsageRow:
    day: str
    key_id: str | None
    model: str | None
    requests: int
    errors: int
    images: int
    input_tokens: int
    output_tokens: int
    cost_micros: int


async def list_logs(
    engine: AsyncEngine, where: LogFilter, *, limit: int = 50, cursor: str | None = None
) -> LogPage:
    """Rows matching ``where``, newest first, at most ``limit``; ``next_cursor`` when more exist."""
    query = select(RequestLogRow.__table__).where(*where.conditions())
    return await newest_first_page(
        engine, query, RequestLogRow.time, RequestLogRow.id, limit=limit, cursor=cursor
    )


async def newest_first_page(
    engine: AsyncEngine, query: Select[Any], time: Any, request_id: Any, *, limit: int, cursor: str | None
) -> LogPage:
    """One page of ``query``'s rows, newest first by (``time``, ``request_id``), from ``cursor``
    on; the rows carry ``time`` and ``id``, and ``next_cursor`` is set when more exist."""
    if cursor is not None:
        query = query.where(older_than_cursor(cursor, time, request_id))
    query = query.order_by(time.desc(), request_id.desc()).limit(limit + 1)
    async with engine.connect() as connection:
        rows = [dict(row) for row in (await connection.execute(query)).mappings()]
    more = len(rows) > limit
    rows = rows[:limit]
    return LogPage(rows, encode_cursor(rows[-1]["time"], rows[-1]["id"]) if more else None)


async def get_log(engine: AsyncEngine, request_id: str) -> dict[str, Any] | None:
    query = select(RequestLogRow.__table__).where(RequestLogRow.id == request_id)
    async with engine.connect() as connection:
        row = (await connection.execute(query)).mappings().first()
    return None if row is None else dict(row)


async def usage(engine: AsyncEngine, where: LogFilter) -> list[UsageRow]:
    """Sums per UTC day × key × model, oldest day first."""
    day = _utc_day(engine)
    succeeded = ~_failed
    query = (
        select(
            day.label("day"),
            RequestLogRow.key_id,
            RequestLogRow.model,
            func.count().label("requests"),
            func.sum(case((_failed, 1), else_=0)).label("errors"),
            func.sum(case((succeeded, func.coalesce(RequestLogRow.n, 1)), else_=0)).label("images"),
            func.sum(func.coalesce(RequestLogRow.input_tokens, 0)).label("input_tokens"),
            func.sum(func.coalesce(RequestLogRow.output_tokens, 0)).label("output_tokens"),
            func.sum(func.coalesce(RequestLogRow.cost_micros, 0)).label("cost_micros"),
        )
        .where(*where.conditions())
        .group_by(day, RequestLogRow.key_id, RequestLogRow.model)
        .order_by(day, RequestLogRow.key_id, RequestLogRow.model)
    )
    async with engine.connect() as connection:
        rows = (await connection.execute(query)).all()
    return [
        UsageRow(
            day=row.day.isoformat() if isinstance(row.day, date) else str(row.day),
            key_id=row.key_id,
            model=row.model,
            requests=int(row.requests),
            errors=int(row.errors or 0),
            images=int(row.images or 0),
            input_tokens=int(row.input_tokens or 0),
            output_tokens=int(row.output_tokens or 0),
            cost_micros=int(row.cost_micros or 0),
        )
        for row in rows
    ]


def encode_cursor(moment: datetime, request_id: str) -> str:
    raw = orjson.dumps([moment.isoformat(), request_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def older_than_cursor(cursor: str, time: Any, request_id: Any) -> ColumnElement[bool]:
    """Rows after ``cursor`` in a newest-first listing ordered by (time, request id)."""
    moment, last_id = decode_cursor(cursor)
    return or_(time < moment, and_(time == moment, request_id < last_id))


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        moment_text, request_id = orjson.loads(raw)
        moment = datetime.fromisoformat(moment_text)
        if moment.tzinfo is None or not isinstance(request_id, str):
            raise ValueError("not a cursor")
    except (binascii.Error, orjson.JSONDecodeError, ValueError, TypeError) as exc:
        raise InvalidRequest(
            "Invalid cursor: pass next_cursor from a previous page.", param="cursor"
        ) from exc
    return moment, request_id


def _status_condition(status: str) -> ColumnElement[bool]:
    value = status.strip().lower()
    if value == "error":
        return _failed
    if value == "ok":
        return ~_failed
    if value in _STATUS_CLASSES:
        low = _STATUS_CLASSES[value]
        return and_(RequestLogRow.status >= low, RequestLogRow.status < low + 100)
    if value.isdigit() and len(value) == 3:
        return RequestLogRow.status == int(value)
    raise InvalidRequest(
        "Invalid status filter: use a status code (429), a class (5xx), 'error' or 'ok'.", param="status"
    )


def _utc_day(engine: AsyncEngine) -> ColumnElement[Any]:
    if engine.dialect.name == "postgresql":
        return func.date(func.timezone("UTC", RequestLogRow.time))
    # SQLite stores naive UTC text, so its date() is already the UTC day.
    return func.date(RequestLogRow.time)
