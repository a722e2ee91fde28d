"""Two `imagegate serve` processes on one PostgreSQL: a channel disabled through the admin API of
one stops getting traffic from the other within 5 s, by polling the channels version and, when
IMAGEGATE_REDIS_URL is set, by Redis pub/sub.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_KEY, REDIS_URL, openai_channel, redis_available, service_missing
from tests.db.conftest import scratch_postgres_database
from tests.fakes.openai_upstream import FakeOpenAIUpstream
from tests.serve_process import ServeProcess

pytestmark = pytest.mark.slow

MODEL = "gpt-image-1"


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    with scratch_postgres_database() as url:  # skips without PostgreSQL, fails under CI=true
        yield url


@pytest.fixture
def upstreams() -> Iterator[tuple[FakeOpenAIUpstream, FakeOpenAIUpstream]]:
    primary, backup = FakeOpenAIUpstream(), FakeOpenAIUpstream()
    primary.start_in_thread()
    backup.start_in_thread()
    yield primary, backup
    primary.stop()
    backup.stop()


@pytest.fixture(params=["polling", "redis"])
def gateways(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    postgres_url: str,
    upstreams: tuple[FakeOpenAIUpstream, FakeOpenAIUpstream],
) -> Iterator[list[str]]:
    redis_url = ""
    if request.param == "redis":
        if not redis_available():
            service_missing(f"Redis not reachable at {REDIS_URL}")
        redis_url = REDIS_URL
    backup = upstreams[1]
    config = tmp_path / "imagegate.toml"
    config.write_text(
        "[[channels]]\n"
        'name = "backup"\nprovider = "openai"\n'
        f'base_url = "{backup.base_url}"\napi_key = "{backup.api_key}"\n'
        f'models = ["{MODEL}"]\npriority = 1\ntimeout_s = 20\n'
    )
    env = {
        "IMAGEGATE_DATABASE_URL": postgres_url,
        "IMAGEGATE_ADMIN_KEY": ADMIN_KEY,
        "IMAGEGATE_CONFIG": str(config),
    }
    if redis_url:
        env["IMAGEGATE_REDIS_URL"] = redis_url
    started = [ServeProcess(env, tmp_path / f"data-{index}") for index in range(2)]
    try:
        for serve in started:
            serve.wait_ready()
        yield [serve.url for serve in started]
    finally:
        for serve in started:
            serve.stop()


def _generate(url: str) -> int:
    body = {"model": MODEL, "prompt": "which channel?", "size": "1024x1024", "response_format": "b64_json"}
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    return httpx.post(f"{url}/v1/images/generations", json=body, headers=headers, timeout=30).status_code


def test_a_channel_disabled_on_one_process_stops_getting_traffic_on_the_other(
    gateways: list[str], upstreams: tuple[FakeOpenAIUpstream, FakeOpenAIUpstream]
) -> None:
    one, two = gateways
    primary, backup = upstreams
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    channel = openai_channel(primary, [MODEL], name="primary", priority=0, timeout_s=20)
    with httpx.Client(base_url=f"{one}/admin", headers=headers, timeout=30) as admin_one:
        admin_one.delete("/channels/primary")  # a leftover of the other parametrisation
        created = admin_one.post("/channels", json=channel)
        assert created.status_code == 201, created.text

        # The other process picks the new channel up, and sends its traffic there.
        deadline = time.monotonic() + 5
        while True:
            before = len(primary.requests)
            assert _generate(two) == 200
            if len(primary.requests) > before:
                break
            assert time.monotonic() < deadline, "process two never used the new channel"
            time.sleep(0.1)

        disabled = admin_one.patch("/channels/primary", json={"enabled": False})
        assert disabled.status_code == 200 and disabled.json()["enabled"] is False
        changed_at = time.monotonic()
        while True:
            before = len(primary.requests)
            assert _generate(two) == 200
            if len(primary.requests) == before:
                break
            assert time.monotonic() - changed_at < 5, "process two still routes to the disabled channel"
        took = time.monotonic() - changed_at
        # From then on, nothing reaches the disabled channel from either process.
        counted = len(primary.requests)
        served_by_backup = len(backup.requests)
        for url in (one, two, two, one):
            assert _generate(url) == 200
        assert len(primary.requests) == counted and len(backup.requests) == served_by_backup + 4
        assert took < 5
        print(f"disabled channel left process two's routing after {took:.2f} s")
        assert admin_one.delete("/channels/primary").status_code == 204


def test_a_channel_added_through_one_worker_serves_on_every_worker(
    tmp_path: Path, upstreams: tuple[FakeOpenAIUpstream, FakeOpenAIUpstream]
) -> None:
    """`serve --workers 2` on SQLite: each worker has its own catalog, and follows the version."""
    primary = upstreams[0]
    serve = ServeProcess({"IMAGEGATE_ADMIN_KEY": ADMIN_KEY}, tmp_path / "data", workers=2)
    try:
        serve.wait_ready()
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        channel = openai_channel(primary, [MODEL], name="added")
        created = httpx.post(f"{serve.url}/admin/channels", json=channel, headers=headers, timeout=30)
        assert created.status_code == 201, created.text
        time.sleep(2.5)  # well inside 5 s: every worker has polled the version by now
        # New connections spread over the workers; every one of them must know the channel.
        statuses = [_generate(serve.url) for _ in range(12)]
        assert statuses == [200] * 12
        assert len(primary.requests) == 12
    finally:
        serve.stop()
