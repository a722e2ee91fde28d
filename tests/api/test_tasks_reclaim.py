"""A task left `processing` by a runner that died is taken over by a live runner, money first.

The rows are written as a dead process would have left them (lease run out): the live gateway's
runner claims the task and decides from the ledger — already charged: failed, never run or
charged again; cancel requested: cancelled with its hold released.
"""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from imagegate.app import create_app
from imagegate.billing.ledger import Ledger
from imagegate.db.tasks import TaskStore
from imagegate.domain import ImageRequest, Principal
from imagegate.services.tasks_codec import principal_to_json, request_to_json
from imagegate.settings import load_settings
from tests.api.test_tasks import poll_until_ended, submit
from tests.billing.accounts import DEMO_PRICE, PRICED_DEMO, kinds, make_key, money, with_engine
from tests.conftest import (
    ADMIN_KEY,
    GatewayFactory,
    LiveGateway,
    ServerThread,
    free_port,
    openai_channel,
    wait_for,
)
from tests.fakes.openai_upstream import FakeOpenAIUpstream

QUOTA_MICROS = 1_000_000


@pytest.fixture
def gw(make_gateway: GatewayFactory) -> LiveGateway:
    return make_gateway(task_poll_s=0.1, **PRICED_DEMO)


def orphan(url: str, key_id: str, task_id: str, *, charged: bool, cancel_requested: bool = False) -> None:
    """A task a dead runner held: hold taken (and maybe settled), lease long expired."""

    async def write(engine: AsyncEngine) -> None:
        ledger = Ledger(engine)
        hold = await ledger.hold(key_id, task_id, DEMO_PRICE)
        if charged:
            await ledger.settle(hold, DEMO_PRICE)
        await ledger.drain()
        request, _ = request_to_json(ImageRequest(operation="generate", model="demo", prompt="orphan"))
        now = time.time()
        await TaskStore(engine).create(
            {
                "id": task_id,
                "key_id": key_id,
                "operation": "generate",
                "model": "demo",
                "status": "processing",
                "request": request,
                "principal": principal_to_json(Principal(key_id=key_id, name="test", billed=True)),
                "hold_micros": DEMO_PRICE,
                "created_at": now - 100,
                "started_at": now - 90,
                "runner_id": "run_dead",
                "lease_until": now - 30,
                "claims": 1,
                "cancel_requested": cancel_requested,
            },
            [],
        )

    with_engine(url, write)


def test_a_reclaimed_task_that_was_already_charged_fails_and_is_not_charged_again(gw: LiveGateway) -> None:
    url = gw.settings.resolved_database_url
    key, secret = make_key(url, quota_usd=Decimal(1))
    orphan(url, key.id, "task_charged0000000000000", charged=True)
    done = poll_until_ended(gw, secret, "task_charged0000000000000")
    assert done["status"] == "failed" and done["error"]["code"] == "task_interrupted"
    assert kinds(url, "task_charged0000000000000") == [
        ("hold", -DEMO_PRICE),
        ("release", DEMO_PRICE),
        ("charge", -DEMO_PRICE),
    ]
    assert money(url, key.id) == (QUOTA_MICROS - DEMO_PRICE, QUOTA_MICROS - DEMO_PRICE)


def test_a_reclaimed_task_with_its_hold_open_runs_again_and_is_charged_once(gw: LiveGateway) -> None:
    url = gw.settings.resolved_database_url
    key, secret = make_key(url, quota_usd=Decimal(1))
    orphan(url, key.id, "task_open00000000000000000", charged=False)
    done = poll_until_ended(gw, secret, "task_open00000000000000000")
    assert done["status"] == "completed", done
    assert [kind for kind, _ in kinds(url, "task_open00000000000000000")] == ["hold", "release", "charge"]
    assert money(url, key.id) == (QUOTA_MICROS - DEMO_PRICE, QUOTA_MICROS - DEMO_PRICE)


def test_a_reclaimed_task_whose_cancel_was_requested_is_cancelled_and_released(gw: LiveGateway) -> None:
    url = gw.settings.resolved_database_url
    key, secret = make_key(url, quota_usd=Decimal(1))
    orphan(url, key.id, "task_cancel00000000000000", charged=False, cancel_requested=True)
    done = poll_until_ended(gw, secret, "task_cancel00000000000000")
    assert done["status"] == "cancelled"
    assert kinds(url, "task_cancel00000000000000") == [("hold", -DEMO_PRICE), ("release", DEMO_PRICE)]
    assert money(url, key.id) == (QUOTA_MICROS, QUOTA_MICROS)


def test_a_clean_shutdown_puts_running_tasks_back_in_the_queue_with_their_hold(
    tmp_path: Path, upstream: FakeOpenAIUpstream
) -> None:
    settings = load_settings(
        data_dir=tmp_path / "data",
        port=free_port(),
        admin_key=ADMIN_KEY,
        log_level="WARNING",
        task_poll_s=0.1,
        channels=[openai_channel(upstream, ["gpt-image-1"], timeout_s=20)],
    )
    url = settings.resolved_database_url
    first = ServerThread(create_app(settings), settings.port)
    first.start()
    gw = LiveGateway(settings=settings, url=f"http://127.0.0.1:{settings.port}")
    key, secret = make_key(url, quota_usd=Decimal(1))
    upstream.delay_s = 3
    task = submit(gw, secret, json={"model": "gpt-image-1", "quality": "low"}).json()
    wait_for(lambda: len(upstream.requests) >= 1, 10, "the upstream call")
    first.stop()
    row = with_engine(url, lambda engine: TaskStore(engine).get(task["id"]))
    assert row is not None and row.status == "queued" and row.runner_id is None
    assert [kind for kind, _ in kinds(url, task["id"])] == ["hold"]  # still held for the next run

    upstream.delay_s = 0
    second = ServerThread(create_app(settings), settings.port)
    second.start()
    try:
        done = poll_until_ended(gw, secret, task["id"])
    finally:
        second.stop()
    assert done["status"] == "completed"
    assert [kind for kind, _ in kinds(url, task["id"])] == ["hold", "release", "charge"]
    balance, total = money(url, key.id)
    assert balance == total


def test_a_cancel_asked_by_another_process_stops_the_run_and_releases_the_hold(
    make_gateway: GatewayFactory, upstream: FakeOpenAIUpstream
) -> None:
    gw = make_gateway(
        task_poll_s=0.1,
        channels=[openai_channel(upstream, ["gpt-image-1"], timeout_s=20)],
    )
    url = gw.settings.resolved_database_url
    key, secret = make_key(url, quota_usd=Decimal(1))
    upstream.delay_s = 5
    task = submit(gw, secret, json={"model": "gpt-image-1", "quality": "low"}).json()
    wait_for(lambda: len(upstream.requests) >= 1, 10, "the upstream call")
    # What a replica that does not run the task does on POST …/cancel: flag it in the database.
    assert with_engine(url, lambda engine: TaskStore(engine).request_cancel(task["id"]))
    started = time.monotonic()
    done = poll_until_ended(gw, secret, task["id"])
    assert done["status"] == "cancelled"
    assert time.monotonic() - started < 3  # seen at the next lease renewal, not after the upstream
    assert [kind for kind, _ in kinds(url, task["id"])] == ["hold", "release"]
    assert money(url, key.id) == (QUOTA_MICROS, QUOTA_MICROS)
