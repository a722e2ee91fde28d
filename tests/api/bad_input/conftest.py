"""Gateways for the bad-input tests, shared by the whole package.

Each case must leave the gateways it used able to make an image (checked after every test).
Starting gateways per module or per parametrized case would dominate the runtime.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from imagegate.app import create_app
from imagegate.settings import load_settings
from tests.api.bad_input.helpers import ALLOWED_SIZES, assert_serves
from tests.conftest import ADMIN_KEY, LiveGateway, ServerThread, free_port


@pytest.fixture(scope="package")
def _servers() -> Iterator[list[ServerThread]]:
    servers: list[ServerThread] = []
    yield servers
    for server in servers:
        server.stop()


def _start(servers: list[ServerThread], data_dir: Path, **overrides: Any) -> LiveGateway:
    port = free_port()
    settings = load_settings(
        data_dir=data_dir / f"data-{port}", port=port, admin_key=ADMIN_KEY, log_level="WARNING", **overrides
    )
    server = ServerThread(create_app(settings), port)
    server.start()
    servers.append(server)
    return LiveGateway(settings=settings, url=f"http://127.0.0.1:{port}")


@pytest.fixture(scope="package")
def gw(_servers: list[ServerThread], tmp_path_factory: pytest.TempPathFactory) -> LiveGateway:
    """Default limits; ``demo`` capped at n=2 (custom sizes), ``listy`` with a list of sizes."""
    return _start(
        _servers,
        tmp_path_factory.mktemp("gw"),
        models={"demo": {"max_n": 2, "sizes": "custom"}, "listy": {"sizes": ALLOWED_SIZES}},
        channels=[{"name": "demo-list", "provider": "demo", "models": ["listy"]}],
    )


@pytest.fixture(scope="package")
def tight(_servers: list[ServerThread], tmp_path_factory: pytest.TempPathFactory) -> LiveGateway:
    """Small limits: 1 MB bodies, 0.25 MB images, 100,000 pixels per input image."""
    return _start(
        _servers, tmp_path_factory.mktemp("tight"), max_body_mb=1, max_image_mb=0.25, max_image_pixels=100_000
    )


@pytest.fixture(autouse=True)
def _still_serves(request: pytest.FixtureRequest) -> Iterator[None]:
    """After every case, each gateway the test used still makes an image."""
    yield
    for name in ("gw", "tight"):
        if name in request.fixturenames:
            assert_serves(request.getfixturevalue(name))
