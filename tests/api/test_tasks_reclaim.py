"""A task left `processing` by a runner that died is taken over by a live runner, money first.

The rows are written as a dead process would have left them (lease run out): the live gateway's
runner claims the task and decides from the ledger — already charged: failed, never run or
charged again; cancel requested: cancelled with its hold released.
"""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from imagegate.billing.ledger import Ledger
from imagegate.db.tasks import TaskStore
from imagegate.domain import ImageRequest, Principal
from imagegate.services.tasks_codec import principal_to_json, request_to_json
from tests.api.test_tasks import poll_until_ended
from tests.billing.accounts import DEMO_PRICE, kinds, make_key, money, with_engine
from tests.conftest import GatewayFactory, LiveGateway

QUOTA_MICROS = 1_000_000


@pytest.fixture
def gw(make_gateway: GatewayFactory) -> LiveGateway:
    return make_gateway(task_poll_s=0.1)


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
