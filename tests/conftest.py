"""Shared fixtures: settings, a live gateway on loopback, a fake upstream, API keys, SDK clients.

The gateway under test is the real ASGI app served by uvicorn in a background thread, so the
official ``openai`` SDK (a sync client) drives it over real HTTP exactly as users do.
"""

from __future__ import annotations

import asyncio
import io
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import aiohttp
import pytest
import uvicorn
from fastapi import FastAPI
from openai import OpenAI
from PIL import Image
from redis.asyncio import Redis
from redis.exceptions import RedisError

from imagegate.app import create_app
from imagegate.db.engine import create_engine
from imagegate.db.keys import KeyStore
from imagegate.http import HttpClients
from imagegate.media.fetch import SafeFetcher
from imagegate.settings import Settings, load_settings
from tests.fakes.openai_upstream import FakeOpenAIUpstream

ADMIN_KEY = "sk-test-admin-key"
REDIS_URL = os.environ.get("IMAGEGATE_TEST_REDIS", "redis://127.0.0.1:6379/0")


def running_in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def service_missing(reason: str) -> NoReturn:
    """Skip a test whose service or data (PostgreSQL, Redis, ../shared/seeds) is missing; fail it in CI.

    Every such skip goes through here. On a laptop without PostgreSQL the rest of the suite still
    runs green; under ``CI=true`` the same absence means the machine is broken (a service failed to
    start, the seeds were not checked out), and a run that skipped those tests must not pass.
    """
    if running_in_ci():
        pytest.fail(f"{reason} (CI=true: a missing service fails the run instead of skipping)", pytrace=False)
    pytest.skip(reason)


def redis_available(url: str = REDIS_URL) -> bool:
    async def ping() -> bool:
        client = Redis.from_url(url, socket_connect_timeout=2)
        try:
            return bool(await client.ping())
        except (RedisError, OSError):
            return False
        finally:
            await client.aclose()

    return asyncio.run(ping())


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The test Redis (``IMAGEGATE_TEST_REDIS``); skips without one, fails under CI=true."""
    if not redis_available():
        service_missing(f"Redis not reachable at {REDIS_URL}")
    return REDIS_URL


def wait_for(condition: Callable[[], object], timeout_s: float = 15, what: str = "the condition") -> None:
    """Poll ``condition`` until it holds; fails the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not hold within {timeout_s:g} s"
        time.sleep(0.02)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerThread:
    """Runs an ASGI app under uvicorn in a daemon thread with its own event loop."""

    def __init__(self, app: Any, port: int) -> None:
        # proxy_headers off, as `imagegate serve` runs it: forwarded headers are the app's to judge.
        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", proxy_headers=False
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the gateway did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


@dataclass
class LiveGateway:
    settings: Settings
    url: str
    #: The app served in this process (``make_gateway``), for tests that look at its parts.
    app: FastAPI | None = None

    def client(self, api_key: str = ADMIN_KEY, **kwargs: Any) -> OpenAI:
        return OpenAI(base_url=f"{self.url}/v1", api_key=api_key, max_retries=0, **kwargs)

    def create_key(self, name: str = "test", models: list[str] | None = None) -> str:
        async def create() -> str:
            engine = create_engine(self.settings.resolved_database_url)
            try:
                _, secret = await KeyStore(engine).create(name, models=models)
            finally:
                await engine.dispose()
            return secret

        return asyncio.run(create())


GatewayFactory = Callable[..., LiveGateway]


@pytest.fixture
def make_gateway(tmp_path: Path) -> Iterator[GatewayFactory]:
    """Start gateways with settings overrides; all are stopped after the test."""
    servers: list[ServerThread] = []

    def start(**overrides: Any) -> LiveGateway:
        port = free_port()
        values: dict[str, Any] = {
            "data_dir": tmp_path / f"data-{port}",
            "port": port,
            "admin_key": ADMIN_KEY,
            "log_level": "WARNING",
        }
        values.update(overrides)
        settings = load_settings(config_file=overrides.pop("config_file", None), **values)
        app = create_app(settings)
        server = ServerThread(app, port)
        server.start()
        servers.append(server)
        return LiveGateway(settings=settings, url=f"http://127.0.0.1:{port}", app=app)

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def gateway(make_gateway: GatewayFactory) -> LiveGateway:
    """A gateway with only the built-in demo provider."""
    return make_gateway()


@pytest.fixture
def client(gateway: LiveGateway) -> OpenAI:
    return gateway.client()


@pytest.fixture
def upstream() -> Iterator[FakeOpenAIUpstream]:
    fake = FakeOpenAIUpstream()
    fake.start_in_thread()
    yield fake
    fake.stop()


def openai_channel(
    upstream: FakeOpenAIUpstream, models: list[str], *, name: str = "fake-openai", **fields: Any
) -> dict[str, Any]:
    """A channel of the ``openai`` provider pointing at ``upstream``, as a config entry."""
    return {
        "name": name,
        "provider": "openai",
        "base_url": upstream.base_url,
        "api_key": upstream.api_key,
        "models": models,
        **fields,
    }


@pytest.fixture
def upstream_gateway(make_gateway: GatewayFactory, upstream: FakeOpenAIUpstream) -> LiveGateway:
    """A gateway whose gpt-image models go to the fake OpenAI upstream."""
    return make_gateway(
        channels=[
            openai_channel(
                upstream,
                ["gpt-image-2", "gpt-image-1"],
                model_map={"gpt-image-2": "gpt-image-2-2026-04-21"},
                timeout_s=10,
            )
        ],
    )


@pytest.fixture
async def http() -> AsyncIterator[HttpClients]:
    """The HTTP clients a provider is built with, for tests that drive a provider directly."""
    fetcher = SafeFetcher(allow_private=False, timeout_s=5, max_bytes=1 << 20, max_redirects=0)
    clients = HttpClients(upstream=aiohttp.ClientSession(), fetcher=fetcher)
    yield clients
    await clients.aclose()


def image_bytes(
    size: tuple[int, int] = (64, 64),
    fmt: str = "PNG",
    color: tuple[int, ...] = (200, 30, 30),
    mode: str = "RGB",
) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, color).save(buffer, format=fmt)
    return buffer.getvalue()


def open_image(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image
