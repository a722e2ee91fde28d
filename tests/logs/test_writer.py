"""The batched writer and the log queries, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from imagegate.db.log_queries import LogFilter, decode_cursor, get_log, list_logs, usage
from imagegate.db.request_logs import SQLITE_ROWS_PER_STATEMENT, RequestLogRow, RequestLogWriter
from imagegate.db.tables import RequestDetailRow
from imagegate.domain import new_request_id
from imagegate.errors import InvalidRequest
from imagegate.observability import RequestDetail, RequestRecord

NOW = datetime.now(UTC).replace(microsecond=0)


def record(**fields: object) -> RequestRecord:
    values: dict[str, object] = {
        "request_id": new_request_id(),
        "method": "POST",
        "endpoint": "/v1/images/generations",
        "status": 200,
        "latency_ms": 12.5,
        "model": "gpt-image-1",
        "key_id": "key_a",
    }
    values.update(fields)
    return RequestRecord(**values)  # type: ignore[arg-type]


async def write(engine: AsyncEngine, *items: tuple[RequestRecord, datetime]) -> None:
    writer = RequestLogWriter(engine, interval_s=3600)
    for item, moment in items:
        writer.submit(item, moment.timestamp())
    await writer.flush()
    assert writer.pending == 0


async def count(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(select(func.count()).select_from(RequestLogRow))).scalar_one())


async def test_every_field_round_trips(engine: AsyncEngine) -> None:
    full = record(
        group="team",
        channel="main",
        upstream_model="gpt-image-1-2025",
        upstream_request_id="up_1",
        stream=True,
        n=2,
        size="1024x1024",
        quality="high",
        user="alice",
        client_ip="10.1.2.3",
        status=502,
        ttfb_ms=3.5,
        input_tokens=10,
        output_tokens=20,
        cost_usd="0.334000",
        error_type="upstream_error",
        error_code="upstream_error",
        error_message="boom",
        attempts=[{"channel": "main", "error": "upstream_error", "ms": 5.0}],
    )
    await write(engine, (full, NOW))
    row = await get_log(engine, full.request_id)
    assert row is not None
    assert row["time"] == NOW
    assert row["cost_micros"] == 334_000
    for name in ("group", "channel", "upstream_model", "upstream_request_id", "stream", "n", "size"):
        assert row[name] == getattr(full, name)
    assert (row["user"], row["client_ip"], row["status"], row["ttfb_ms"]) == ("alice", "10.1.2.3", 502, 3.5)
    assert (row["input_tokens"], row["output_tokens"]) == (10, 20)
    assert (row["error_code"], row["error_message"]) == ("upstream_error", "boom")
    assert row["attempts"] == full.attempts


async def test_a_background_flush_writes_batches(engine: AsyncEngine) -> None:
    writer = RequestLogWriter(engine, batch_size=10, interval_s=0.05)
    await writer.start()
    try:
        for _ in range(25):
            writer.submit(record(), NOW.timestamp())
        for _ in range(400):
            if await count(engine) == 25:
                break
            await asyncio.sleep(0.05)
        assert await count(engine) == 25
    finally:
        await writer.stop()


async def test_stop_flushes_everything_queued(engine: AsyncEngine) -> None:
    writer = RequestLogWriter(engine, batch_size=7, interval_s=3600)
    await writer.start()
    for _ in range(30):
        writer.submit(record(), NOW.timestamp())
    await writer.stop()
    assert await count(engine) == 30


async def test_a_full_queue_drops_and_counts_without_blocking(engine: AsyncEngine) -> None:
    writer = RequestLogWriter(engine, max_queue=3, interval_s=3600)
    for _ in range(5):
        writer.submit(record(), NOW.timestamp())
    assert (writer.pending, writer.dropped) == (3, 2)
    await writer.flush()
    assert await count(engine) == 3


async def test_a_row_the_database_refuses_does_not_wedge_the_queue(engine: AsyncEngine) -> None:
    first = record()
    await write(engine, (first, NOW))
    writer = RequestLogWriter(engine, interval_s=3600)
    writer.submit(record(request_id=first.request_id), NOW.timestamp())  # duplicate id
    writer.submit(record(), NOW.timestamp())
    await writer.flush()
    assert (writer.pending, writer.dropped, writer.written) == (0, 1, 1)
    assert await count(engine) == 2


async def test_a_batch_larger_than_one_insert_statement_arrives_whole(engine: AsyncEngine) -> None:
    # SQLite inserts SQLITE_ROWS_PER_STATEMENT rows per statement: 250 rows are three statements,
    # the last one short; a duplicate id in the middle fails one statement, not its neighbours.
    first = record()
    await write(engine, (first, NOW))
    writer = RequestLogWriter(engine, batch_size=500, interval_s=3600)
    sent = [record() for _ in range(250)]
    sent[137] = record(request_id=first.request_id)
    for item in sent:
        writer.submit(item, NOW.timestamp())
    await writer.flush()
    assert (writer.pending, writer.dropped, writer.written) == (0, 1, 249)
    assert await count(engine) == 250
    assert SQLITE_ROWS_PER_STATEMENT < 250


async def test_retention_deletes_old_rows_at_start(engine: AsyncEngine) -> None:
    old, recent = record(), record()
    await write(engine, (old, NOW - timedelta(days=31)), (recent, NOW - timedelta(days=29)))
    writer = RequestLogWriter(engine, retention_days=30, interval_s=3600)
    await writer.start()
    await writer.stop()
    assert await get_log(engine, old.request_id) is None
    assert await get_log(engine, recent.request_id) is not None


async def test_retention_zero_keeps_everything(engine: AsyncEngine) -> None:
    await write(engine, (record(), NOW - timedelta(days=3650)))
    assert await RequestLogWriter(engine, retention_days=0).delete_expired() == 0
    assert await count(engine) == 1


async def test_pages_have_no_duplicates_or_gaps_even_with_inserts(engine: AsyncEngine) -> None:
    # Several rows share a timestamp, so the id breaks ties.
    items = [(record(), NOW - timedelta(seconds=i // 3)) for i in range(20)]
    await write(engine, *items)
    seen: list[str] = []
    page = await list_logs(engine, LogFilter(), limit=6)
    while True:
        seen.extend(row["id"] for row in page.rows)
        await write(engine, (record(), datetime.now(UTC) + timedelta(seconds=1)))  # newer rows arrive
        if page.next_cursor is None:
            break
        page = await list_logs(engine, LogFilter(), limit=6, cursor=page.next_cursor)
    expected = [
        item.request_id for item, _ in sorted(items, key=lambda i: (i[1], i[0].request_id), reverse=True)
    ]
    newest_first = [item for item in seen if item in {i.request_id for i, _ in items}]
    assert len(seen) == len(set(seen))
    assert newest_first == expected
    assert seen[: len(expected)] == expected  # the inserts were newer, so never inside a page


async def test_filters(engine: AsyncEngine) -> None:
    ok = record(key_id="key_a", model="gpt-image-1")
    limited = record(key_id="key_b", model="gpt-image-1", status=429, error_code="rate_limit_exceeded")
    broken = record(key_id="key_a", model="gpt-image-2", status=502, error_code="upstream_error")
    stream_failed = record(key_id="key_b", model="gpt-image-2", status=200, error_code="upstream_timeout")
    old = record(key_id="key_a", model="gpt-image-1")
    await write(
        engine,
        (ok, NOW),
        (limited, NOW),
        (broken, NOW),
        (stream_failed, NOW),
        (old, NOW - timedelta(days=2)),
    )

    async def ids(**where: object) -> set[str]:
        page = await list_logs(engine, LogFilter(**where), limit=100)  # type: ignore[arg-type]
        return {row["id"] for row in page.rows}

    assert await ids(key_id="key_a") == {ok.request_id, broken.request_id, old.request_id}
    assert await ids(model="gpt-image-2") == {broken.request_id, stream_failed.request_id}
    assert await ids(status="error") == {limited.request_id, broken.request_id, stream_failed.request_id}
    assert await ids(status="ok") == {ok.request_id, old.request_id}
    assert await ids(status="5xx") == {broken.request_id}
    assert await ids(status="429") == {limited.request_id}
    assert await ids(since=NOW - timedelta(days=1)) == await ids() - {old.request_id}
    assert await ids(until=NOW - timedelta(days=1)) == {old.request_id}
    assert await ids(key_id="key_a", model="gpt-image-1", status="ok") == {ok.request_id, old.request_id}


async def test_bad_filters_and_cursors_are_client_errors() -> None:
    for bad in ("abc", "12", "6xx"):
        try:
            LogFilter(status=bad).conditions()
        except InvalidRequest as error:
            assert error.param == "status"
        else:
            raise AssertionError(f"status {bad!r} was accepted")
    for cursor in ("", "not-a-cursor", "W10"):
        try:
            decode_cursor(cursor)
        except InvalidRequest as error:
            assert error.param == "cursor"
        else:
            raise AssertionError(f"cursor {cursor!r} was accepted")


async def test_usage_sums_per_day_key_and_model(engine: AsyncEngine) -> None:
    day1 = datetime(2026, 3, 1, 23, 59, tzinfo=UTC)
    day2 = datetime(2026, 3, 2, 0, 1, tzinfo=UTC)
    await write(
        engine,
        (record(n=2, input_tokens=10, output_tokens=100, cost_usd="0.5"), day1),
        (record(n=1, input_tokens=5, output_tokens=50, cost_usd="0.25"), day1),
        (record(n=3, status=502, error_code="upstream_error"), day1),
        (record(n=1, cost_usd="1.000001"), day2),
        (record(key_id="key_b", n=4, cost_usd="2"), day2),
        (record(model="gpt-image-2", cost_usd="0.1"), day2),
    )
    rows = await usage(engine, LogFilter())
    table = {(r.day, r.key_id, r.model): r for r in rows}
    first = table[("2026-03-01", "key_a", "gpt-image-1")]
    assert (first.requests, first.errors, first.images) == (3, 1, 3)
    assert (first.input_tokens, first.output_tokens, first.cost_micros) == (15, 150, 750_000)
    assert table[("2026-03-02", "key_a", "gpt-image-1")].cost_micros == 1_000_001
    assert table[("2026-03-02", "key_b", "gpt-image-1")].images == 4
    assert table[("2026-03-02", "key_a", "gpt-image-2")].requests == 1
    assert len(rows) == 4
    assert [r.day for r in rows] == sorted(r.day for r in rows)

    only_b = await usage(engine, LogFilter(key_id="key_b"))
    assert [(r.key_id, r.cost_micros) for r in only_b] == [("key_b", 2_000_000)]
    since = await usage(engine, LogFilter(since=day2))
    assert {r.day for r in since} == {"2026-03-02"}


async def test_details_round_trip_in_many_rows_and_an_existing_detail_wins(engine: AsyncEngine) -> None:
    # On SQLite the details go as prebuilt multi-row statements (100 rows each), JSON as text.
    moment = NOW - timedelta(seconds=5)
    kept = record()
    async with engine.begin() as connection:  # the console stored this one first, with its uploads
        await connection.execute(
            insert(RequestDetailRow).values(
                request_id=kept.request_id, time=moment, prompt="first", inputs=[{"url": "/files/a.png"}]
            )
        )
    records = [kept] + [record() for _ in range(149)]
    for index, item in enumerate(records):
        item.detail = RequestDetail(
            prompt=f"一只猫 {index}",
            params={"size": "1024x1024", "n": 1, "quality": "高"},
            outputs=[{"url": f"/files/{index}.png", "revised_prompt": None}],
        )
    await write(engine, *((item, moment) for item in records))
    async with engine.connect() as connection:
        query = select(*RequestDetailRow.__table__.c)
        rows = {row.request_id: row for row in (await connection.execute(query)).all()}
    assert len(rows) == 150
    assert (rows[kept.request_id].prompt, rows[kept.request_id].outputs) == ("first", None)
    last = rows[records[-1].request_id]
    assert last.prompt == "一只猫 149" and last.time == moment
    assert last.params == {"size": "1024x1024", "n": 1, "quality": "高"}
    assert last.outputs == [{"url": "/files/149.png", "revised_prompt": None}] and last.inputs is None
