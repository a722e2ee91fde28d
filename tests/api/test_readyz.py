"""/readyz: database, image store (writable, with free space) and Redis when configured.

Before, a full disk still answered "storage: ok" (a temporary file of 0 bytes fits anywhere),
and every generation then failed after its upstream call.
"""

from __future__ import annotations

import shutil

import requests

from tests.conftest import GatewayFactory, free_port
from tests.limits.test_redis import REDIS_URL, needs_redis


def _ready(url: str) -> tuple[int, dict[str, str]]:
    answer = requests.get(f"{url}/readyz", timeout=10)
    return answer.status_code, answer.json()["checks"]


def test_ready(make_gateway: GatewayFactory) -> None:
    status, checks = _ready(make_gateway().url)
    assert status == 200
    assert checks == {"database": "ok", "storage": "ok"}


def test_not_ready_when_free_space_is_below_the_minimum(make_gateway: GatewayFactory) -> None:
    gateway = make_gateway()
    free_mb = shutil.disk_usage(gateway.settings.data_dir).free / 1024 / 1024
    tight = make_gateway(storage_min_free_mb=free_mb * 2)
    status, checks = _ready(tight.url)
    assert status == 503
    assert checks["database"] == "ok"
    assert "below the" in checks["storage"] and "MB minimum" in checks["storage"]


def test_not_ready_when_the_store_cannot_be_written(make_gateway: GatewayFactory) -> None:
    gateway = make_gateway()
    images = gateway.settings.images_dir
    shutil.rmtree(images, ignore_errors=True)
    images.write_bytes(b"")  # a file where the directory should be: nothing can be written
    status, checks = _ready(gateway.url)
    assert status == 503
    assert checks["storage"].startswith("error")
    assert checks["database"] == "ok"


@needs_redis
def test_redis_is_checked_when_configured(make_gateway: GatewayFactory) -> None:
    status, checks = _ready(make_gateway(redis_url=REDIS_URL).url)
    assert (status, checks["redis"]) == (200, "ok")


def test_not_ready_when_redis_does_not_answer(make_gateway: GatewayFactory) -> None:
    status, checks = _ready(make_gateway(redis_url=f"redis://127.0.0.1:{free_port()}/0").url)
    assert status == 503
    assert checks["redis"].startswith("error")
    assert checks["storage"] == "ok"
