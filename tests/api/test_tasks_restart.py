"""A gateway killed with SIGKILL while it holds 20 queued and 5 running tasks loses none of them.

The 5 running ones were held but not charged when the process died: after the restart their lease
runs out, a runner claims them again and runs them; every task ends, none is charged twice, and
the key's balance equals the sum of its ledger.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
import requests

from tests.api.test_accounts_race import IMAGEGATE, _wait_ready
from tests.api.test_tasks import auth
from tests.billing.accounts import entries, make_key, money
from tests.conftest import ADMIN_KEY, free_port, wait_for
from tests.fakes.openai_upstream import FakeOpenAIUpstream

pytestmark = pytest.mark.slow


def serve(
    tmp_path: Path, name: str, database_url: str, upstream: FakeOpenAIUpstream
) -> tuple[subprocess.Popen[bytes], str]:
    config = tmp_path / "imagegate.toml"
    config.write_text(
        f"""
[[channels]]
name = "slow-openai"
provider = "openai"
base_url = "{upstream.base_url}"
api_key = "{upstream.api_key}"
models = ["gpt-image-1"]
timeout_s = 30
"""
    )
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("IMAGEGATE_")},
        "IMAGEGATE_CONFIG": str(config),
        "IMAGEGATE_DATABASE_URL": database_url,
        "IMAGEGATE_ADMIN_KEY": ADMIN_KEY,
        "IMAGEGATE_DATA_DIR": str(tmp_path / "data"),
        "IMAGEGATE_PORT": str(port),
        "IMAGEGATE_LOG_LEVEL": "WARNING",
        "IMAGEGATE_TASK_CONCURRENCY": "5",
        "IMAGEGATE_TASK_LEASE_S": "10",
        "IMAGEGATE_TASK_POLL_S": "0.2",
    }
    log_path = tmp_path / f"serve-{name}.log"
    process = subprocess.Popen(
        [IMAGEGATE, "serve"], cwd=tmp_path, env=env, stdout=log_path.open("wb"), stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    _wait_ready(process, url, log_path)
    return process, url


def test_kill_9_with_20_queued_and_5_running_then_restart(tmp_path: Path) -> None:
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'imagegate.db'}"
    upstream = FakeOpenAIUpstream()
    upstream.delay_s = 5
    upstream.start_in_thread()
    first, url = serve(tmp_path, "first", database_url, upstream)
    second = None
    try:
        key, secret = make_key(database_url, quota_usd=Decimal(10))
        ids = []
        for _ in range(25):
            answer = requests.post(
                f"{url}/v1/images/generations/async",
                json={"model": "gpt-image-1", "prompt": "slow", "quality": "low"},
                headers=auth(secret),
                timeout=10,
            )
            assert answer.status_code == 202, answer.text
            ids.append(answer.json()["id"])
        wait_for(lambda: len(upstream.requests) >= 5, 20, "five upstream calls")
        tasks = requests.get(f"{url}/v1/images/tasks?limit=100", headers=auth(secret), timeout=10).json()[
            "data"
        ]
        statuses = Counter(task["status"] for task in tasks)
        assert statuses == {"processing": 5, "queued": 20}, statuses
        first.send_signal(signal.SIGKILL)
        first.wait()

        second, url = serve(tmp_path, "second", database_url, upstream)
        deadline = time.monotonic() + 120
        while True:
            tasks = requests.get(f"{url}/v1/images/tasks?limit=100", headers=auth(secret), timeout=10).json()[
                "data"
            ]
            if all(task["status"] in ("completed", "failed", "cancelled") for task in tasks):
                break
            assert time.monotonic() < deadline, Counter(task["status"] for task in tasks)
            time.sleep(0.5)
        assert {task["id"] for task in tasks} == set(ids)
        assert Counter(task["status"] for task in tasks) == {"completed": 25}
        charges = Counter(
            entry.request_id for entry in entries(database_url, key.id) if entry.kind == "charge"
        )
        assert set(charges) == set(ids) and set(charges.values()) == {1}  # each charged exactly once
        balance, total = money(database_url, key.id)
        assert balance == total
        assert len(upstream.requests) == 30  # the 5 interrupted runs ran again, nothing else twice
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(timeout=20)
        upstream.stop()
