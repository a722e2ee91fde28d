"""How PostgreSQL runs a claim when its statistics are wrong, as they are during a burst.

Autovacuum analyzes a table a minute or more after it changed, so a burst into an empty queue is
planned for an empty table. A claim must still read the queue's index from its oldest entry and
look the picked rows up by primary key: never a scan or a sort of every queued row.
"""

from __future__ import annotations

import time

from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.compiler import SQLCompiler

from imagegate.db.engine import POSTGRES_PREFER_INDEXES
from imagegate.db.tasks import TaskStore, _claim_statement
from imagegate.db.tasks_tables import TaskRow
from tests.db.conftest import postgres_engine, postgres_url
from tests.db.task_rows import queued_task

__all__ = ["postgres_engine", "postgres_url"]


async def test_a_claim_reads_the_queue_by_index_when_the_statistics_say_it_is_empty(
    postgres_engine: AsyncEngine,
) -> None:
    async with postgres_engine.begin() as connection:
        await connection.execute(text("ANALYZE tasks"))  # statistics of an empty table
        now = time.time()
        rows = [queued_task(f"task_{n:05d}", created_at=now + n * 1e-4) for n in range(3000)]
        await connection.execute(insert(TaskRow), rows)
    statement = _claim_statement(True, expired=False)
    compiled = statement.compile(dialect=postgres_engine.dialect)
    assert isinstance(compiled, SQLCompiler)
    values = compiled.construct_params(
        {"claim_now": now, "claim_runner": "run_x", "claim_lease_until": now + 30, "claim_limit": 8}
    )
    async with postgres_engine.begin() as connection:
        await connection.exec_driver_sql(POSTGRES_PREFER_INDEXES)
        explained = await connection.exec_driver_sql(
            "EXPLAIN " + compiled.string, tuple(values[name] for name in compiled.positiontup or ())
        )
        plan = "\n".join(row[0] for row in explained)
        await connection.rollback()
    assert "Index Scan using ix_tasks_status_created_id" in plan, plan
    assert "Index Scan using pk_tasks" in plan, plan
    assert not any(word in plan for word in ("Seq Scan", "Bitmap", "Sort")), plan
    # And the claim itself takes the oldest eight.
    claimed = await TaskStore(postgres_engine).claim("run_x", limit=8, lease_s=30)
    assert [task.id for task in claimed] == [f"task_{n:05d}" for n in range(8)]
