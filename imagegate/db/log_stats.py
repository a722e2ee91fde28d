"""Series for the console's charts: per day, per model and per channel sums of the request log.

Each is one grouped query over a time range, so a chart costs one round trip however many rows
it covers; the ``(time, …)`` covering index of migration 0004 lets it read the index alone.

    days = await daily(engine, LogFilter(since=month_ago))
    models = await by_model(engine, LogFilter(since=month_ago, key_id="key_…"))
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from imagegate.db.log_queries import LogFilter, failed
from imagegate.db.request_logs import RequestLogRow


@dataclass(frozen=True, slots=True)
class Totals:
    label: str
    requests: int
    errors: int
    images: int
    cost_micros: int
    latency_ms: float

    @property
    def error_rate(self) -> float:
        return 100.0 * self.errors / self.requests if self.requests else 0.0

    @property
    def cost_per_image_micros(self) -> float:
        return self.cost_micros / self.images if self.images else 0.0


def _sums() -> list[ColumnElement[Any]]:
    return [
        func.count().label("requests"),
        func.sum(case((failed, 1), else_=0)).label("errors"),
        func.sum(case((~failed, func.coalesce(RequestLogRow.n, 1)), else_=0)).label("images"),
        func.sum(func.coalesce(RequestLogRow.cost_micros, 0)).label("cost_micros"),
        func.avg(RequestLogRow.latency_ms).label("latency_ms"),
    ]


def _totals(label: Any, row: Any) -> Totals:
    text = label.isoformat() if isinstance(label, date) else str(label if label is not None else "-")
    return Totals(
        label=text,
        requests=int(row.requests),
        errors=int(row.errors or 0),
        images=int(row.images or 0),
        cost_micros=int(row.cost_micros or 0),
        latency_ms=float(row.latency_ms or 0.0),
    )


def utc_day(engine: AsyncEngine) -> ColumnElement[Any]:
    if engine.dialect.name == "postgresql":
        return func.date(func.timezone("UTC", RequestLogRow.time))
    # SQLite stores naive UTC text, so its date() is already the UTC day.
    return func.date(RequestLogRow.time)


async def daily(engine: AsyncEngine, where: LogFilter) -> list[Totals]:
    day = utc_day(engine)
    query = select(day.label("label"), *_sums()).where(*where.conditions()).group_by(day).order_by(day)
    async with engine.connect() as connection:
        rows = (await connection.execute(query)).all()
    return [_totals(row.label, row) for row in rows]


async def by_model(engine: AsyncEngine, where: LogFilter) -> list[Totals]:
    query = (
        select(RequestLogRow.model.label("label"), *_sums())
        .where(*where.conditions())
        .group_by(RequestLogRow.model)
        .order_by(func.count().desc())
    )
    async with engine.connect() as connection:
        rows = (await connection.execute(query)).all()
    return [_totals(row.label, row) for row in rows]


async def failures_by_channel(engine: AsyncEngine, where: LogFilter) -> list[tuple[str, int]]:
    """Failed requests per the channel they ended on (requests that never reached one: "-")."""
    query = (
        select(RequestLogRow.channel, func.count().label("failures"))
        .where(*where.conditions(), failed)
        .group_by(RequestLogRow.channel)
        .order_by(func.count().desc())
    )
    async with engine.connect() as connection:
        rows = (await connection.execute(query)).all()
    return [(row.channel or "-", int(row.failures)) for row in rows]
