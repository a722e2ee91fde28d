"""The quota race across processes: two `imagegate serve` processes, one PostgreSQL, one Redis.

A key with quota for exactly five demo images gets fifty concurrent requests split between the
two gateways: exactly five succeed, the rest get 429 insufficient_quota, and the balance ends
at 0.000000, equal to the sum of the key's ledger. Skips without PostgreSQL or Redis (fails under
CI=true).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import openai
import pytest
import requests

from imagegate.money import format_usd
from tests.billing.accounts import DEMO_PRICE, PRICED_DEMO_TOML, entries, make_key, money
from tests.conftest import ADMIN_KEY, REDIS_URL, free_port
from tests.db.conftest import scratch_postgres_database

pytestmark = [
    pytest.mark.slow,
    pytest.mark.usefixtures("redis_url"),  # skips without Redis, fails under CI=true
]

IMAGEGATE = str(Path(sys.executable).with_name("imagegate"))


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    with scratch_postgres_database() as url:  # skips without PostgreSQL, fails under CI=true
        yield url


def _serve(tmp_path: Path, index: int, database_url: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("IMAGEGATE_")},
        "IMAGEGATE_DATABASE_URL": database_url,
        "IMAGEGATE_REDIS_URL": REDIS_URL,
        "IMAGEGATE_ADMIN_KEY": ADMIN_KEY,
        "IMAGEGATE_DATA_DIR": str(tmp_path / f"data-{index}"),
        "IMAGEGATE_PORT": str(port),
        "IMAGEGATE_LOG_LEVEL": "WARNING",
    }
    (tmp_path / "imagegate.toml").write_text(PRICED_DEMO_TOML)  # read from the working directory
    log = (tmp_path / f"serve-{index}.log").open("wb")
    process = subprocess.Popen([IMAGEGATE, "serve"], cwd=tmp_path, env=env, stdout=log, stderr=log)
    return process, f"http://127.0.0.1:{port}"


def _wait_ready(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        try:
            if requests.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"gateway at {url} did not start:\n{log.read_text()}")


@pytest.fixture
def gateways(tmp_path: Path, postgres_url: str) -> Iterator[list[str]]:
    started = [_serve(tmp_path, index, postgres_url) for index in range(2)]
    try:
        for index, (process, url) in enumerate(started):
            _wait_ready(process, url, tmp_path / f"serve-{index}.log")
        yield [url for _, url in started]
    finally:
        for process, _ in started:
            process.terminate()
        for process, _ in started:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_fifty_requests_through_two_processes_spend_exactly_the_quota(
    gateways: list[str], postgres_url: str
) -> None:
    key, secret = make_key(postgres_url, "race", quota_usd=Decimal(5 * DEMO_PRICE) / 10**6)
    clients = [
        openai.OpenAI(base_url=f"{url}/v1", api_key=secret, max_retries=0, timeout=120) for url in gateways
    ]

    def attempt(index: int) -> str:
        try:
            clients[index % 2].images.generate(model="demo", prompt="race", size="1024x1024", quality="low")
        except openai.RateLimitError as error:
            return str(error.code)
        return "ok"

    with ThreadPoolExecutor(max_workers=50) as pool:
        outcomes = list(pool.map(attempt, range(50)))
    assert outcomes.count("ok") == 5, outcomes
    assert outcomes.count("insufficient_quota") == 45, outcomes
    balance, total = money(postgres_url, key.id)
    assert balance == total == 0
    assert format_usd(balance) == "0.000000"
    charges = [entry for entry in entries(postgres_url, key.id) if entry.kind == "charge"]
    assert len(charges) == 5 and all(entry.amount_micros == -DEMO_PRICE for entry in charges)
