"""The request log cannot stall, on SQLite and PostgreSQL: huge numbers, refused rows, a missing table."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from imagegate.db.log_queries import get_log
from imagegate.db.request_logs import RequestLogWriter
from tests.logs.test_writer import count, record

NOW = datetime.now(UTC).replace(microsecond=0)


async def test_upstream_token_counts_past_32_bits_are_stored(engine: AsyncEngine) -> None:
    """output_tokens 10**12 overflowed PostgreSQL's int32 column and stopped every later batch."""
    big = record(input_tokens=3, output_tokens=10**12)
    writer = RequestLogWriter(engine, interval_s=3600)
    writer.submit(big, NOW.timestamp())
    writer.submit(record(), NOW.timestamp())
    await writer.flush()
    assert (writer.pending, writer.dropped, writer.written) == (0, 0, 2)
    row = await get_log(engine, big.request_id)
    assert row is not None and row["output_tokens"] == 10**12


async def test_a_count_no_column_can_hold_keeps_the_row_without_it(engine: AsyncEngine) -> None:
    """input_tokens 10**19 does not fit in 64 bits (SQLite refused the whole batch for it)."""
    huge = record(input_tokens=10**19, output_tokens=7, cost_usd="0.040000")
    writer = RequestLogWriter(engine, interval_s=3600)
    writer.submit(huge, NOW.timestamp())
    await writer.flush()
    row = await get_log(engine, huge.request_id)
    assert row is not None
    assert (row["input_tokens"], row["output_tokens"], row["cost_micros"]) == (None, 7, 40_000)


async def test_a_refused_row_is_dropped_and_the_rest_of_its_batch_written(engine: AsyncEngine) -> None:
    # A status no integer column takes: refused by both databases, whatever the batch around it.
    bad = record(status=10**19)
    good = [record() for _ in range(9)]
    writer = RequestLogWriter(engine, interval_s=3600, batch_size=100)
    for item in [*good[:4], bad, *good[4:]]:
        writer.submit(item, NOW.timestamp())
    await writer.flush()
    assert (writer.pending, writer.dropped, writer.written) == (0, 1, 9)
    assert await get_log(engine, bad.request_id) is None
    for item in good:
        assert await get_log(engine, item.request_id) is not None
    # The writer goes on: the next batch is written too.
    writer.submit(record(), NOW.timestamp())
    await writer.flush()
    assert await count(engine) == 10


async def test_the_background_writer_gets_past_a_bad_row(engine: AsyncEngine) -> None:
    writer = RequestLogWriter(engine, interval_s=0.05)
    await writer.start()
    try:
        writer.submit(record(status=10**19), NOW.timestamp())
        writer.submit(record(), NOW.timestamp())
        for _ in range(400):
            if writer.pending == 0 and await count(engine) == 1:
                break
            await asyncio.sleep(0.05)
        writer.submit(record(), NOW.timestamp())
    finally:
        await writer.stop()
    assert (await count(engine), writer.dropped) == (2, 1)


async def test_rows_wait_while_the_table_cannot_be_written(engine: AsyncEngine) -> None:
    """Every row failing alone is the database's problem, not the rows': nothing is dropped."""
    writer = RequestLogWriter(engine, interval_s=3600)
    async with engine.begin() as connection:
        await connection.execute(text("ALTER TABLE request_logs RENAME TO request_logs_away"))
    try:
        for _ in range(5):
            writer.submit(record(), NOW.timestamp())
        await writer.flush()
        assert (writer.pending, writer.dropped, writer.written) == (5, 0, 0)
    finally:
        async with engine.begin() as connection:
            await connection.execute(text("ALTER TABLE request_logs_away RENAME TO request_logs"))
    await writer.flush()
    assert (writer.pending, writer.dropped, writer.written) == (0, 0, 5)
    assert await count(engine) == 5
