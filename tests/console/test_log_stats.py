"""Day summaries of the request log: the same sums as the live log, summed once, today live."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from imagegate.db import log_stats
from imagegate.db.log_queries import LogFilter
from imagegate.db.request_logs import RequestLogRow

NOW = datetime.now(UTC)


async def add(engine: AsyncEngine, rows: list[dict[str, object]]) -> None:
    async with engine.begin() as connection:
        await connection.execute(insert(RequestLogRow), rows)


def row(
    index: int, days_ago: int, *, key: str = "key_a", model: str = "demo", status: int = 200
) -> dict[str, object]:
    return {
        "id": f"req_{index}",
        "time": NOW - timedelta(days=days_ago, minutes=index),
        "method": "POST",
        "endpoint": "/v1/images/generations",
        "key_id": key,
        "model": model,
        "channel": "demo",
        "n": 2,
        "status": status,
        "latency_ms": 100.0,
        "cost_micros": 0 if status >= 400 else 20_000,
    }


async def test_day_summaries_match_the_live_log_and_are_made_once(engine: AsyncEngine) -> None:
    rows = [
        row(i, days_ago=i % 5, key="key_a" if i % 2 else "key_b", status=502 if i % 7 == 0 else 200)
        for i in range(60)
    ]
    await add(engine, rows)
    where = LogFilter(since=(NOW - timedelta(days=10)).replace(hour=0, minute=0, second=0, microsecond=0))
    live = await log_stats.summed(engine, where, ("day", "model"))
    added = await log_stats.roll_up(engine)
    assert added >= 4
    assert await log_stats.roll_up(engine) == 0  # idempotent
    rolled = await log_stats.summed(engine, where, ("day", "model"))
    assert rolled == live
    assert sum(t.requests for t in rolled) == 60
    assert sum(t.errors for t in rolled) == len([i for i in range(60) if i % 7 == 0])
    one_key = await log_stats.summed(engine, LogFilter(key_id="key_a", since=where.since), ("model",))
    assert one_key[0].requests == 30 and one_key[0].images == 2 * len(
        [i for i in range(60) if i % 2 and i % 7]
    )


async def test_today_is_counted_live_after_a_roll_up(engine: AsyncEngine) -> None:
    await add(engine, [row(1, days_ago=3)])
    await log_stats.roll_up(engine)
    await add(engine, [{**row(2, days_ago=0), "time": NOW}])
    totals = await log_stats.summed(engine, LogFilter(since=NOW - timedelta(days=5)), ("model",))
    assert totals[0].requests == 2


async def test_a_model_filter_is_summed_live(engine: AsyncEngine) -> None:
    await add(engine, [row(1, 2, model="a"), row(2, 2, model="b")])
    await log_stats.roll_up(engine)
    totals = await log_stats.summed(engine, LogFilter(model="a"), ("day",))
    assert [t.requests for t in totals] == [1]


async def test_channel_sums_come_from_their_own_summary(engine: AsyncEngine) -> None:
    await add(engine, [row(1, 2), {**row(2, 2), "channel": "other", "status": 502}, row(3, 1)])
    live = await log_stats.summed(engine, LogFilter(since=NOW - timedelta(days=5)), ("channel",))
    await log_stats.roll_up(engine)
    rolled = await log_stats.summed(engine, LogFilter(since=NOW - timedelta(days=5)), ("channel",))
    assert rolled == live
    assert {t.label: (t.requests, t.errors) for t in rolled} == {"demo": (2, 0), "other": (1, 1)}


async def test_a_range_reaching_before_the_first_request_reads_the_summaries(engine: AsyncEngine) -> None:
    await add(engine, [row(1, 3), row(2, 2)])
    await log_stats.roll_up(engine)
    # Rows written straight into summarised days are not in the log's live sums any more:
    # proof that a year-long range reads the summaries for those days.
    await add(engine, [{**row(3, 3), "id": "req_late"}])
    totals = await log_stats.summed(engine, LogFilter(since=NOW - timedelta(days=365)), ("model",))
    assert totals[0].requests == 2


async def test_request_details_follow_the_log_retention(engine: AsyncEngine) -> None:
    from imagegate.db.request_details import RequestDetail, delete_before, get_detail, save_detail

    await save_detail(engine, RequestDetail("req_old", NOW - timedelta(days=100), "old", {}, [], []))
    await save_detail(engine, RequestDetail("req_new", NOW, "new", {}, [], []))
    assert await delete_before(engine, NOW - timedelta(days=90)) == 1
    assert await get_detail(engine, "req_old") is None and await get_detail(engine, "req_new") is not None
