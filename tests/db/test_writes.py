"""Writes under concurrency: SQLite's in-process queue of writers, and group commit's shared inserts.

On SQLite every ``engine.begin()`` of one process waits its turn (``SqliteEngine``) instead of
polling in SQLite's busy handler; on PostgreSQL transactions run side by side. Group commit puts
the new rows of many callers into one executemany, and a row that fails fails only its caller.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from imagegate.db import migrate
from imagegate.db.engine import SqliteEngine, create_engine, write_gate
from imagegate.db.group_commit import GroupCommit
from imagegate.db.tasks_tables import TaskRow
from tests.db.conftest import database_url, engine
from tests.db.task_rows import queued_task

__all__ = ["database_url", "engine"]


@pytest.fixture
async def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'imagegate.db'}"
    migrate.upgrade(url)
    return url


@pytest.fixture
async def sqlite(sqlite_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(sqlite_url)
    yield engine
    await engine.dispose()


async def count_tasks(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(select(func.count()).select_from(TaskRow))).scalar_one())


async def test_sqlite_write_transactions_of_one_process_take_turns(sqlite: AsyncEngine) -> None:
    engine = sqlite
    assert isinstance(engine, SqliteEngine)
    order: list[str] = []

    async def writer(name: str, hold_s: float) -> None:
        async with engine.begin() as connection:
            order.append(f"{name} in")
            await connection.execute(insert(TaskRow), queued_task(f"task_{name}"))
            await asyncio.sleep(hold_s)  # the write lock is held meanwhile
            order.append(f"{name} out")

    await asyncio.gather(writer("a", 0.3), writer("b", 0), writer("c", 0))
    # Without the gate b and c would be in, then sleep in SQLite's busy handler until a commits.
    assert order == ["a in", "a out", "b in", "b out", "c in", "c out"]
    assert await count_tasks(engine) == 3


async def test_a_write_outside_begin_waits_for_the_gate_and_reads_never_do(sqlite: AsyncEngine) -> None:
    engine = sqlite
    events: list[str] = []

    async def held_transaction() -> None:
        async with engine.begin() as connection:
            await connection.execute(insert(TaskRow), queued_task("task_held"))
            await asyncio.sleep(0.2)
            events.append("committed")

    async def gated_writer() -> None:
        await asyncio.sleep(0.05)
        async with write_gate(engine):
            events.append("gated write")

    async def reader() -> None:
        await asyncio.sleep(0.05)
        await count_tasks(engine)
        events.append("read")

    await asyncio.gather(held_transaction(), gated_writer(), reader())
    assert events == ["read", "committed", "gated write"]


async def test_the_gate_is_sqlites_alone(engine: AsyncEngine) -> None:
    # PostgreSQL locks rows, not the database: its transactions run side by side.
    gate = write_gate(engine)
    if engine.dialect.name == "sqlite":
        assert gate is cast(SqliteEngine, engine).write_gate()
    else:
        assert isinstance(gate, contextlib.nullcontext)


async def test_each_event_loop_has_its_own_gate(sqlite_url: str) -> None:
    # An engine outlives a loop in tests and CLI commands: a lock bound to an old loop must
    # not be reused by the next one.
    other = create_engine(sqlite_url)
    assert isinstance(other, SqliteEngine)
    gate = other.write_gate()
    assert other.write_gate() is gate

    def in_a_new_loop() -> bool:
        async def gate_there() -> bool:
            return other.write_gate() is not gate

        return asyncio.run(gate_there())

    assert await asyncio.to_thread(in_a_new_loop)
    await other.dispose()


async def test_group_commit_inserts_many_callers_rows_together(engine: AsyncEngine) -> None:
    writes = GroupCommit(engine)
    statement = insert(TaskRow)
    await asyncio.gather(*(writes.insert(statement, queued_task(f"task_{n:03d}")) for n in range(150)))
    assert await count_tasks(engine) == 150


async def test_a_failing_row_fails_only_its_own_caller(engine: AsyncEngine) -> None:
    writes = GroupCommit(engine)
    statement = insert(TaskRow)
    await writes.insert(statement, queued_task("task_taken"))
    results = await asyncio.gather(
        writes.insert(statement, queued_task("task_one")),
        writes.insert(statement, queued_task("task_taken")),  # the id exists: this row fails
        writes.insert(statement, queued_task("task_two")),
        return_exceptions=True,
    )
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], IntegrityError)
    assert await count_tasks(engine) == 3
