"""The task queue under competing runners, on SQLite and PostgreSQL: no task is ever run twice.

Two runners (each with its own engine, as two processes would have) claim from one table at the
same time; then leases: a task whose lease ran out is taken over, and the runner that lost it can
no longer renew or finish it.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from imagegate.db.engine import create_engine
from imagegate.db.tasks import TaskStore
from tests.db.conftest import database_url, engine
from tests.db.task_rows import queued_task

__all__ = ["database_url", "engine"]


def task_values(index: int) -> dict[str, object]:
    return queued_task(f"task_{index:06d}", created_at=time.time() + index * 1e-6)


@pytest.fixture
async def second_engine(engine: AsyncEngine, database_url: str) -> AsyncIterator[AsyncEngine]:
    other = create_engine(database_url)
    yield other
    await other.dispose()


async def test_two_runners_claiming_at_once_never_take_the_same_task(
    engine: AsyncEngine, second_engine: AsyncEngine
) -> None:
    store = TaskStore(engine)
    for index in range(300):
        await store.create(task_values(index), [])
    runners = [(TaskStore(engine), "run_a"), (TaskStore(second_engine), "run_b")]
    for runner, _ in runners:
        assert await runner.claim("warm-up", limit=0, lease_s=1) == []  # connections open first
    claimed: list[tuple[str, str]] = []

    async def drain(runner: TaskStore, name: str) -> None:
        while True:
            batch = await runner.claim(name, limit=7, lease_s=60)
            if not batch:
                return
            claimed.extend((task.id, name) for task in batch)
            await asyncio.sleep(0.002)  # as a runner does: start the batch, then claim again

    await asyncio.gather(*(drain(*runner) for runner in runners), *(drain(*runner) for runner in runners))
    counts = Counter(task_id for task_id, _ in claimed)
    assert len(counts) == 300 and set(counts.values()) == {1}
    assert {name for _, name in claimed} == {"run_a", "run_b"}  # both really took part
    assert (await store.status_counts()) == {"processing": 300}


async def test_an_expired_lease_is_taken_over_and_the_old_runner_loses_the_task(engine: AsyncEngine) -> None:
    store = TaskStore(engine)
    await store.create(task_values(1), [])
    [first] = await store.claim("run_old", limit=5, lease_s=0.2)
    assert first.claims == 1 and first.status == "processing"
    assert await store.claim("run_new", limit=5, lease_s=30) == []  # lease still running
    await asyncio.sleep(0.3)
    [taken] = await store.claim("run_new", limit=5, lease_s=30)
    assert taken.id == first.id and taken.claims == 2 and taken.started_at == first.started_at
    assert await store.renew("run_old", [first.id], 30) == {}
    assert not await store.finish(first.id, runner_id="run_old", from_status="processing", status="completed")
    assert await store.renew("run_new", [first.id], 30) == {first.id: False}
    assert await store.finish(first.id, runner_id="run_new", from_status="processing", status="completed")
    assert (await store.get(first.id)).status == "completed"  # type: ignore[union-attr]


async def test_a_claim_that_skips_expired_leases_takes_only_queued_tasks(engine: AsyncEngine) -> None:
    # The runner looks for expired leases once per poll interval, not on every claim.
    store = TaskStore(engine)
    await store.create(task_values(1), [])
    [stale] = await store.claim("run_old", limit=5, lease_s=0.05)
    await asyncio.sleep(0.1)
    await store.create(task_values(2), [])
    [queued] = await store.claim("run_new", limit=5, lease_s=30, expired=False)
    assert queued.id == "task_000002"
    [taken] = await store.claim("run_new", limit=5, lease_s=30)
    assert taken.id == stale.id and taken.claims == 2


async def test_queue_position_counts_the_older_queued_tasks(engine: AsyncEngine) -> None:
    store = TaskStore(engine)
    for index in range(4):
        await store.create(task_values(index), [])
    await store.claim("run_a", limit=1, lease_s=30)
    positions = []
    for index in range(1, 4):
        task = await store.get(f"task_{index:06d}")
        assert task is not None
        positions.append(await store.position(task))
    assert positions == [0, 1, 2]
