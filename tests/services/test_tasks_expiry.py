"""Task expiry (SPEC §10), on SQLite and PostgreSQL: a task still queued after the TTL fails with its
hold released; ended tasks past the TTL are deleted with their inputs; younger ones stay."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from imagegate.billing.ledger import Ledger
from imagegate.billing.meter import Billing
from imagegate.db.keys import KeyStore
from imagegate.db.tasks import TaskInput, TaskStore
from imagegate.services.tasks import TaskService
from imagegate.settings import load_settings
from tests.db.conftest import database_url, engine
from tests.db.task_rows import queued_task

__all__ = ["database_url", "engine"]


def row(task_id: str, key_id: str, **values: Any) -> dict[str, Any]:
    return queued_task(task_id, key_id=key_id, operation="edit", **values)


async def test_expiry_fails_old_queued_tasks_releasing_their_hold_and_deletes_old_ended_ones(
    engine: AsyncEngine,
) -> None:
    key, _ = await KeyStore(engine).create("expiry", quota_usd="1")
    ledger = Ledger(engine)
    store = TaskStore(engine)
    old = time.time() - 3 * 3600
    await ledger.hold(key.id, "task_stale", 5000)
    await store.create(row("task_stale", key.id, created_at=old, hold_micros=5000), [])
    await ledger.hold(key.id, "task_young", 5000)
    await store.create(row("task_young", key.id, hold_micros=5000), [])
    await store.create(row("task_old_done", key.id, created_at=old, status="completed", completed_at=old), [])
    await store.create(row("task_new_done", key.id, status="completed", completed_at=time.time()), [])
    uploaded = {
        "model": "demo",
        "prompt": "p",
        "sources": [{"role": "image", "param": "image", "stored": True}],
    }
    await store.create(
        row("task_stale2", key.id, created_at=old, request=uploaded), [TaskInput("image", "image", b"png")]
    )
    assert len(await store.inputs("task_stale2")) == 1
    await ledger.drain()

    service = TaskService(store, None, Billing(None, ledger), load_settings(task_ttl_hours=2))  # type: ignore[arg-type]
    await service.expire()
    await ledger.drain()

    stale = await store.get("task_stale")
    assert stale is not None and stale.status == "failed" and stale.error is not None
    assert stale.error["code"] == "task_expired"
    assert [entry.kind for entry in await ledger.entries(request_id="task_stale")] == ["hold", "release"]
    assert [entry.kind for entry in await ledger.entries(request_id="task_young")] == ["hold"]
    assert (await store.get("task_young")).status == "queued"  # type: ignore[union-attr]
    assert await store.get("task_old_done") is None
    assert await store.get("task_new_done") is not None
    assert await store.inputs("task_stale2") == []  # an ended task keeps no inputs
    assert await ledger.balance(key.id) == await ledger.total(key.id) == 1_000_000 - 5000
