"""Kill -9 mid-request: the holds come back, nothing is charged twice, the requests are logged.

A key with $0.12 sends three $0.04 requests to an upstream that takes 4 s; the gateway is killed
(SIGKILL) while they wait. On SQLite the gateway is restarted; on PostgreSQL a second gateway
serving the same database outlives the first. Either way, within 60 s (a 1 s lease here, so it
takes seconds): balance $0.12 = the ledger's sum, each request has exactly a hold and a release,
and each is in the request log with status 499 ``aborted``. The next request is served and
charged once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import openai
import pytest
import requests
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from imagegate.db.log_queries import get_log
from imagegate.db.tables import OpenHoldRow
from tests.billing.accounts import entries, make_key, money, with_engine
from tests.conftest import ADMIN_KEY, free_port, wait_for
from tests.db.conftest import postgres_url
from tests.fakes.openai_upstream import FakeOpenAIUpstream

__all__ = ["postgres_url"]

pytestmark = pytest.mark.slow

IMAGEGATE = str(Path(sys.executable).with_name("imagegate"))
PRICE = 40_000  # micro-USD per image, the model's configured price
#: The holds of a dead process must be back within this long (SPEC §8).
DEADLINE_S = 60


class Gateway:
    """One `imagegate serve` process."""

    def __init__(self, tmp_path: Path, name: str, database_url: str, upstream: FakeOpenAIUpstream) -> None:
        self.tmp_path, self.name, self.database_url = tmp_path, name, database_url
        config = tmp_path / "imagegate.toml"
        config.write_text(
            f"""
[[channels]]
name = "up"
provider = "openai"
base_url = "{upstream.base_url}"
api_key = "{upstream.api_key}"
models = ["gpt-image-2"]

[models."gpt-image-2"]
price = {{ per_image = {{ default = 0.04 }} }}
"""
        )
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("IMAGEGATE_")},
            "IMAGEGATE_DATABASE_URL": database_url,
            "IMAGEGATE_ADMIN_KEY": ADMIN_KEY,
            "IMAGEGATE_DATA_DIR": str(tmp_path / f"data-{name}"),
            "IMAGEGATE_CONFIG": str(config),
            "IMAGEGATE_PORT": str(self.port),
            "IMAGEGATE_LOG_LEVEL": "WARNING",
            "IMAGEGATE_HOLD_LEASE_S": "1",
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.log = tmp_path / f"serve-{name}.log"

    def start(self) -> Gateway:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [IMAGEGATE, "serve"], cwd=self.tmp_path, env=self.env, stdout=log, stderr=log
            )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            try:
                if requests.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"gateway {self.name} did not start:\n{self.log.read_text()}")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def client(self, secret: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=secret, max_retries=0, timeout=30)


@pytest.fixture
def upstream() -> Iterator[FakeOpenAIUpstream]:
    with FakeOpenAIUpstream().start_in_thread() as up:
        yield up


def generate(client: openai.OpenAI) -> Any:
    return client.images.generate(model="gpt-image-2", prompt="a lighthouse", size="1024x1024")


def crash_mid_request(
    victim: Gateway, upstream: FakeOpenAIUpstream, secret: str, database_url: str
) -> list[str]:
    """Three requests wait on the slow upstream when ``victim`` is killed; returns their ids."""
    upstream.delay_s = 4.0
    pool = ThreadPoolExecutor(max_workers=3)
    calls = [pool.submit(generate, victim.client(secret)) for _ in range(3)]
    wait_for(lambda: len(upstream.requests) >= 3, 30, "the requests reaching the upstream")
    victim.kill()
    for call in calls:
        with pytest.raises(openai.APIConnectionError):
            call.result(timeout=30)
    pool.shutdown()
    upstream.delay_s = 0
    holds = [entry for entry in entries(database_url) if entry.kind == "hold"]
    assert len(holds) == 3 and all(entry.amount_micros == -PRICE for entry in holds)
    return [str(entry.request_id) for entry in holds]


def assert_released_within_deadline(database_url: str, key_id: str, killed_at: float) -> float:
    while money(database_url, key_id) != (3 * PRICE, 3 * PRICE):
        assert time.monotonic() - killed_at < DEADLINE_S, money(database_url, key_id)
        time.sleep(0.2)
    return time.monotonic() - killed_at


def assert_aborted_and_logged(database_url: str, request_ids: list[str]) -> None:
    for request_id in request_ids:
        rows = [(e.kind, e.amount_micros) for e in entries(database_url, request_id=request_id)]
        assert rows == [("hold", -PRICE), ("release", PRICE)], rows

    async def read(engine: AsyncEngine) -> tuple[int, list[dict[str, Any] | None]]:
        async with engine.connect() as connection:
            count = select(func.count()).select_from(OpenHoldRow)
            open_holds = (await connection.execute(count)).scalar_one()
        return int(open_holds), [await get_log(engine, request_id) for request_id in request_ids]

    open_holds, logged = with_engine(database_url, read)
    assert open_holds == 0
    for row in logged:
        assert row is not None
        assert (row["status"], row["error_code"], row["model"]) == (499, "aborted", "gpt-image-2")
        assert row["endpoint"] == "/v1/images/generations"


def assert_next_request_charged_once(gateway: Gateway, secret: str, url: str, key_id: str) -> None:
    generate(gateway.client(secret))
    assert money(url, key_id) == (2 * PRICE, 2 * PRICE)
    charges = [entry for entry in entries(url) if entry.kind == "charge"]
    assert [entry.amount_micros for entry in charges] == [-PRICE]


def test_sqlite_a_restarted_gateway_gives_back_what_the_killed_one_held(
    tmp_path: Path, upstream: FakeOpenAIUpstream
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'imagegate.db'}"
    gateway = Gateway(tmp_path, "a", url, upstream).start()
    try:
        key, secret = make_key(url, "crash", quota_usd="0.12")
        request_ids = crash_mid_request(gateway, upstream, secret, url)
        killed_at = time.monotonic()
        assert money(url, key.id) == (0, 0)
        gateway.start()  # the same data, a new process
        elapsed = assert_released_within_deadline(url, key.id, killed_at)
        print(f"holds back {elapsed:.1f} s after the kill")
        assert_aborted_and_logged(url, request_ids)
        assert_next_request_charged_once(gateway, secret, url, key.id)
    finally:
        gateway.stop()


def test_postgresql_a_surviving_gateway_gives_back_what_the_killed_one_held(
    tmp_path: Path, upstream: FakeOpenAIUpstream, postgres_url: str
) -> None:
    victim = Gateway(tmp_path, "victim", postgres_url, upstream).start()
    survivor = Gateway(tmp_path, "survivor", postgres_url, upstream).start()
    try:
        key, secret = make_key(postgres_url, "crash", quota_usd="0.12")
        request_ids = crash_mid_request(victim, upstream, secret, postgres_url)
        killed_at = time.monotonic()
        elapsed = assert_released_within_deadline(postgres_url, key.id, killed_at)
        print(f"holds back {elapsed:.1f} s after the kill")
        assert_aborted_and_logged(postgres_url, request_ids)
        assert_next_request_charged_once(survivor, secret, postgres_url, key.id)
    finally:
        victim.stop()
        survivor.stop()
