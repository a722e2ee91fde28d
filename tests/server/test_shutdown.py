"""Graceful shutdown of `imagegate serve` (SIGTERM), with a real process and a slow upstream.

It stops accepting at once; requests in flight may finish within IMAGEGATE_SHUTDOWN_GRACE_S;
those still running then are cancelled: their quota holds released, their rows in the request
log (status 499), the cancellation in the server's log. Before, SIGTERM waited for every
request however long it took, and a kill after that lost the holds and the log rows.
"""

from __future__ import annotations

import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.billing.accounts import money
from tests.conftest import ADMIN_KEY
from tests.fakes.openai_upstream import FakeOpenAIUpstream
from tests.server.serve import Served, served

pytestmark = pytest.mark.slow

PRICE_USD = 0.04
#: uvicorn re-raises the SIGTERM it handled once it has shut down cleanly.
CLEAN_EXIT = (0, -signal.SIGTERM)


@pytest.fixture
def upstream() -> Iterator[FakeOpenAIUpstream]:
    fake = FakeOpenAIUpstream()
    fake.start_in_thread()
    yield fake
    fake.stop()


def _config(tmp_path: Path, upstream: FakeOpenAIUpstream) -> str:
    path = tmp_path / "imagegate.toml"
    path.write_text(
        f"""
[[channels]]
name = "slow"
provider = "openai"
base_url = "{upstream.base_url}"
api_key = "{upstream.api_key}"
models = ["gpt-image-1"]
timeout_s = 120

[models."gpt-image-1"]
price = {{ per_image = {{ default = {PRICE_USD} }} }}
"""
    )
    return str(path)


def _generate(gw: Served, secret: str, result: dict[str, Any]) -> None:
    try:
        result["response"] = requests.post(
            f"{gw.url}/v1/images/generations",
            headers={"Authorization": f"Bearer {secret}"},
            json={"model": "gpt-image-1", "prompt": "slow", "size": "1024x1024"},
            timeout=60,
        )
    except requests.RequestException as exc:
        result["error"] = exc


def _in_background(gw: Served, secret: str) -> tuple[threading.Thread, dict[str, Any]]:
    result: dict[str, Any] = {}
    thread = threading.Thread(target=_generate, args=(gw, secret, result), daemon=True)
    thread.start()
    return thread, result


def test_sigterm_lets_requests_in_flight_finish(tmp_path: Path, upstream: FakeOpenAIUpstream) -> None:
    upstream.delay_s = 2.0
    with served(tmp_path, "--config", _config(tmp_path, upstream), IMAGEGATE_SHUTDOWN_GRACE_S="20") as gw:
        thread, result = _in_background(gw, ADMIN_KEY)
        time.sleep(0.8)  # the request is at the upstream
        stopped_at = time.monotonic()
        gw.process.send_signal(signal.SIGTERM)
        time.sleep(0.4)
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{gw.url}/healthz", timeout=2)  # no longer accepting
        thread.join(30)
        assert gw.process.wait(timeout=30) in CLEAN_EXIT
        exited_after = time.monotonic() - stopped_at
    assert result["response"].status_code == 200, result
    assert result["response"].json()["data"][0]["url"]
    assert exited_after < 8


def test_requests_past_the_grace_are_cancelled_released_and_logged(
    tmp_path: Path, upstream: FakeOpenAIUpstream
) -> None:
    upstream.delay_s = 9.0  # well past the grace; short enough for the fake to stop after
    with served(tmp_path, "--config", _config(tmp_path, upstream), IMAGEGATE_SHUTDOWN_GRACE_S="1") as gw:
        created = gw.admin("POST", "/admin/keys", json={"name": "payer", "quota_usd": "1"})
        assert created.status_code in (200, 201), created.text
        key_id, secret = created.json()["id"], created.json()["key"]
        thread, result = _in_background(gw, secret)
        deadline = time.monotonic() + 10
        while not upstream.requests and time.monotonic() < deadline:
            time.sleep(0.05)
        assert upstream.requests, "the request never reached the upstream"
        stopped_at = time.monotonic()
        gw.process.send_signal(signal.SIGTERM)
        assert gw.process.wait(timeout=20) in CLEAN_EXIT
        exited_after = time.monotonic() - stopped_at
        thread.join(10)
    assert exited_after < 6, exited_after

    answered = result.get("response")
    assert answered is not None and answered.status_code == 503, result
    assert answered.json()["error"]["code"] == "server_shutting_down"

    log = gw.log()
    assert "POST /v1/images/generations cancelled after" in log

    database = tmp_path / f"data-{gw.port}" / "imagegate.db"
    with sqlite3.connect(database) as db:
        rows = db.execute("SELECT endpoint, status FROM request_logs").fetchall()
    assert ("/v1/images/generations", 499) in rows

    balance, ledger_sum = money(f"sqlite+aiosqlite:///{database}", key_id)
    assert balance == ledger_sum == 1_000_000  # the hold was released: nothing charged
