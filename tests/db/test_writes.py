"""Writes under concurrency: SQLite's in-process queue of writers, and group commit's shared inserts.

On SQLite every ``engine.begin()`` of one process waits its turn (``SqliteEngine``) instead of
polling in SQLite's busy handler; on PostgreSQL transactions run side by side. Group commit puts
the new rows of many callers into one executemany, and a row that fails fails only its caller.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import cast

import pytest
from sqlalchemy import event, func, insert, select
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from imagegate.db import migrate
from imagegate.db.engine import SqliteEngine, create_engine, write_gate
from imagegate.db.group_commit import GroupCommit
from imagegate.db.tasks import TaskStore
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


async def test_a_batch_changes_existing_rows_in_key_order(engine: AsyncEngine) -> None:
    writes = GroupCommit(engine)
    ran: list[str] = []

    def write(name: str) -> Callable[[AsyncConnection], Awaitable[None]]:
        async def apply(connection: AsyncConnection) -> None:
            ran.append(name)

        return apply

    # Queued in one go, so one batch: writes naming no row first, in their order; then by key.
    await asyncio.gather(
        writes.run(write("task_c"), row="task_c"),
        writes.run(write("first"), row=""),
        writes.run(write("task_a"), row="task_a"),
        writes.run(write("second")),
        writes.run(write("task_b"), row="task_b"),
    )
    assert ran == ["first", "second", "task_a", "task_b", "task_c"]


async def test_ends_of_many_tasks_never_deadlock_with_a_lease_renewal(engine: AsyncEngine) -> None:
    """A batch of ends locks its rows in id order, as a renewal does: never a cycle.

    Queued in descending id order, a batch applied as queued would lock rows against the
    renewal's order and PostgreSQL would report a deadlock (one side's error, seen here)."""
    deadlocks: list[BaseException] = []

    @event.listens_for(engine.sync_engine, "handle_error")
    def watch(context: ExceptionContext) -> None:
        if getattr(context.original_exception, "sqlstate", None) == "40P01":  # deadlock_detected
            deadlocks.append(context.original_exception)

    store = TaskStore(engine)
    ids = [f"task_{n:03d}" for n in range(40)]
    for task_id in ids:
        await store.create(queued_task(task_id), [])
    assert len(await store.claim("run_a", limit=len(ids), lease_s=30)) == len(ids)
    ending = True

    async def renew_meanwhile() -> int:
        renewals = 0
        while ending:
            await store.renew("run_a", ids, 30)
            renewals += 1
        return renewals

    renewing = asyncio.create_task(renew_meanwhile())
    for round_ in range(8):
        await asyncio.gather(*(store.count_partial(task_id, "run_a", round_) for task_id in reversed(ids)))
    ending = False
    assert await renewing > 0
    event.remove(engine.sync_engine, "handle_error", watch)
    assert deadlocks == []
    renewed = await store.renew("run_a", ids, 30)
    assert sorted(renewed) == ids
    task = await store.get(ids[0])
    assert task is not None and task.partial_images_received == 7
