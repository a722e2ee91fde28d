"""Sums of the request log for the console's charts and usage: per day, key, model and channel.

Finished UTC days are summed once into ``request_log_days`` (`roll_up`, run in the background),
so a chart over 30 or 365 days reads a few thousand summary rows, not a million log rows. Days
not summed yet (today, or history while the first roll-up runs) are summed live from the log
through the ``(time, …)`` covering index. A filter beyond time and key is summed live.

    await roll_up(engine)                                    # idempotent; any replica may run it
    days = await summed(engine, LogFilter(since=month_ago), ("day",))
    models = await summed(engine, LogFilter(since=month_ago, key_id="key_…"), ("model",))
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, case, func, insert, literal, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from imagegate.db.log_queries import LogFilter, failed
from imagegate.db.request_logs import RequestLogRow
from imagegate.db.tables import RequestLogDayDoneRow, RequestLogDayRow

logger = logging.getLogger("imagegate.log_stats")

Dimension = str  # "day" | "key_id" | "model" | "channel"
#: Stands for "every value" in a summary row's key, model or channel.
ALL = "*"
#: A day is summed once it has been over for this long (late log batches land first).
SETTLE = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class Totals:
    #: The group's values, one per dimension asked for ("" for none).
    keys: tuple[str, ...]
    requests: int
    errors: int
    images: int
    input_tokens: int
    output_tokens: int
    cost_micros: int
    latency_ms_sum: float

    @property
    def label(self) -> str:
        return " · ".join(k or "-" for k in self.keys)

    @property
    def latency_ms(self) -> float:
        return self.latency_ms_sum / self.requests if self.requests else 0.0

    @property
    def error_rate(self) -> float:
        return 100.0 * self.errors / self.requests if self.requests else 0.0

    @property
    def cost_per_image_micros(self) -> float:
        return self.cost_micros / self.images if self.images else 0.0


def utc_day(engine: AsyncEngine) -> ColumnElement[Any]:
    if engine.dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", RequestLogRow.time), "YYYY-MM-DD")
    # SQLite stores naive UTC text, so its date() is already the UTC day.
    return func.date(RequestLogRow.time)


def _log_column(engine: AsyncEngine, dimension: Dimension) -> ColumnElement[Any]:
    if dimension == "day":
        return utc_day(engine)
    column: ColumnElement[Any] = getattr(RequestLogRow, dimension)
    return func.coalesce(column, literal(""))


def _log_sums() -> list[ColumnElement[Any]]:
    return [
        func.count().label("requests"),
        func.sum(case((failed, 1), else_=0)).label("errors"),
        func.sum(case((~failed, func.coalesce(RequestLogRow.n, 1)), else_=0)).label("images"),
        func.sum(func.coalesce(RequestLogRow.input_tokens, 0)).label("input_tokens"),
        func.sum(func.coalesce(RequestLogRow.output_tokens, 0)).label("output_tokens"),
        func.sum(func.coalesce(RequestLogRow.cost_micros, 0)).label("cost_micros"),
        func.sum(RequestLogRow.latency_ms).label("latency_ms_sum"),
    ]


def _day_sums() -> list[ColumnElement[Any]]:
    table = RequestLogDayRow
    return [
        func.sum(table.requests).label("requests"),
        func.sum(table.errors).label("errors"),
        func.sum(table.images).label("images"),
        func.sum(table.input_tokens).label("input_tokens"),
        func.sum(table.output_tokens).label("output_tokens"),
        func.sum(table.cost_micros).label("cost_micros"),
        func.sum(table.latency_ms_sum).label("latency_ms_sum"),
    ]


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


async def roll_up(engine: AsyncEngine, now: datetime | None = None) -> int:
    """Sum every finished day that is not summed yet; returns how many days were added."""
    now = now or datetime.now(UTC)
    last = (now - SETTLE).date() - timedelta(days=1)
    async with engine.connect() as connection:
        first_time = (await connection.execute(select(func.min(RequestLogRow.time)))).scalar()
        done = set((await connection.execute(select(RequestLogDayDoneRow.day))).scalars())
    if first_time is None:
        return 0
    if isinstance(first_time, str):  # SQLite without type processing on an aggregate
        first_time = datetime.fromisoformat(first_time)
    day = first_time.date()
    added = 0
    while day <= last:
        if day.isoformat() not in done and await _roll_up_day(engine, day):
            added += 1
        day += timedelta(days=1)
    return added


async def _roll_up_day(engine: AsyncEngine, day: date) -> bool:
    # Three summaries per day, each small: key × model (channel "*"), model (key and channel "*")
    # and channel (key and model "*"). Their product (key × model × channel) can be nearly as long
    # as the log itself; the model and channel rows keep an all-keys chart to a few rows a day.
    in_day = (RequestLogRow.time >= _midnight(day), RequestLogRow.time < _midnight(day + timedelta(days=1)))
    key, model, channel = (_log_column(engine, d) for d in ("key_id", "model", "channel"))
    label = literal(day.isoformat())
    by_key_model = select(label, key, model, literal(ALL), *_log_sums()).where(*in_day).group_by(key, model)
    by_model = select(label, literal(ALL), model, literal(ALL), *_log_sums()).where(*in_day).group_by(model)
    by_channel = (
        select(label, literal(ALL), literal(ALL), channel, *_log_sums()).where(*in_day).group_by(channel)
    )
    target = [c.name for c in RequestLogDayRow.__table__.columns]
    try:
        async with engine.begin() as connection:
            await connection.execute(insert(RequestLogDayDoneRow).values(day=day.isoformat()))
            await connection.execute(insert(RequestLogDayRow).from_select(target, by_key_model))
            await connection.execute(insert(RequestLogDayRow).from_select(target, by_model))
            await connection.execute(insert(RequestLogDayRow).from_select(target, by_channel))
    except IntegrityError:
        return False  # another process summed it first
    return True


def _rollable(where: LogFilter, dimensions: Sequence[Dimension]) -> bool:
    if "channel" in dimensions and ("key_id" in dimensions or "model" in dimensions or where.key_id):
        return False  # channels are summed over all keys and models only
    return where.model is None and where.status is None and where.size is None and where.until is None


async def summed(engine: AsyncEngine, where: LogFilter, dimensions: Sequence[Dimension]) -> list[Totals]:
    """Sums grouped by ``dimensions``, from the day summaries where they cover the filter."""
    if not _rollable(where, dimensions):
        return _merge(await _live(engine, where, dimensions, skip_days=set()), [], dimensions)
    since_day = where.since.date().isoformat() if where.since else "0000-00-00"
    table = RequestLogDayRow
    conditions = [table.day >= since_day]
    if "channel" in dimensions:
        conditions += [table.key_id == ALL, table.model == ALL]
    elif where.key_id is not None or "key_id" in dimensions:
        conditions += [table.key_id != ALL, table.channel == ALL]
        if where.key_id is not None:
            conditions.append(table.key_id == where.key_id)
    else:
        conditions += [table.key_id == ALL, table.channel == ALL]
    async with engine.connect() as connection:
        done_query = select(RequestLogDayDoneRow.day).where(RequestLogDayDoneRow.day >= since_day)
        done = set((await connection.execute(done_query)).scalars())
        group = [getattr(table, d) for d in dimensions]
        rolled = (
            await connection.execute(select(*group, *_day_sums()).where(*conditions).group_by(*group))
        ).all()
    # Live: from the first day not summed (normally today) on, minus any summed day after it.
    live_since = where.since
    if done:
        first_open = _first_open_day(since_day, done)
        live_since = max(where.since, _midnight(first_open)) if where.since else _midnight(first_open)
    live_where = LogFilter(key_id=where.key_id, since=live_since)
    live = await _live(engine, live_where, dimensions, skip_days=done)
    return _merge(live, rolled, dimensions)


def _first_open_day(since_day: str, done: set[str]) -> date:
    # Summing runs forward from the log's first day, so no day before the first summed one has
    # any rows: the live part starts at the first day after that which is not summed yet.
    day = date.fromisoformat(max(since_day, min(done)))
    while day.isoformat() in done:
        day += timedelta(days=1)
    return day


async def _live(
    engine: AsyncEngine, where: LogFilter, dimensions: Sequence[Dimension], skip_days: set[str]
) -> list[Any]:
    day = utc_day(engine)
    group = [_log_column(engine, d) for d in dimensions]
    query = select(day.label("_day"), *group, *_log_sums()).where(*where.conditions()).group_by(day, *group)
    async with engine.connect() as connection:
        rows = (await connection.execute(query)).all()
    return [row[1:] for row in rows if str(row[0]) not in skip_days]


def _merge(live: list[Any], rolled: Sequence[Any], dimensions: Sequence[Dimension]) -> list[Totals]:
    width = len(dimensions)
    sums: dict[tuple[str, ...], list[float]] = {}
    for row in [*rolled, *live]:
        keys = tuple(str(value) if value is not None else "" for value in row[:width])
        values = [float(v or 0) for v in row[width:]]
        current = sums.setdefault(keys, [0.0] * len(values))
        for index, value in enumerate(values):
            current[index] += value
    return [
        Totals(keys, int(v[0]), int(v[1]), int(v[2]), int(v[3]), int(v[4]), int(v[5]), v[6])
        for keys, v in sorted(sums.items())
    ]
