"""Two `imagegate serve` processes on one PostgreSQL, Redis and S3 bucket: any replica serves any image."""

from __future__ import annotations

import asyncio
import hashlib
import io
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from openai import OpenAI
from PIL import Image

from tests.conftest import ADMIN_KEY
from tests.db.conftest import _create_postgres_database, _drop_postgres_database
from tests.serve_process import ServeProcess
from tests.storage.conftest import S3Bucket, s3_environment
from tests.storage.test_sweep_lock import REDIS_URL, redis_or_skip


@pytest.fixture
def postgres_url() -> Iterator[str]:
    name = _create_postgres_database()
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        _drop_postgres_database(name)


@pytest.mark.slow
def test_an_image_made_through_one_replica_is_served_by_the_other(
    s3_bucket: S3Bucket, postgres_url: str, tmp_path: Path
) -> None:
    asyncio.run(redis_or_skip())
    env = {
        **s3_environment(s3_bucket),
        "IMAGEGATE_DATABASE_URL": postgres_url,
        "IMAGEGATE_REDIS_URL": REDIS_URL,
        "IMAGEGATE_ADMIN_KEY": ADMIN_KEY,
        "IMAGEGATE_PUBLIC_URL": "http://gateway.example",  # the load balancer's address
    }
    replicas = [ServeProcess(env, tmp_path / name) for name in ("a", "b")]
    try:
        for replica in replicas:
            replica.wait_ready()
        first, second = replicas
        client = OpenAI(base_url=f"{first.url}/v1", api_key=ADMIN_KEY, max_retries=0)
        result = client.images.generate(
            model="demo", prompt="狐狸 fox", size="1024x1024", response_format="url"
        )
        url = result.data[0].url
        assert url is not None and url.startswith("http://gateway.example/files/")
        path = url.removeprefix("http://gateway.example")

        served = httpx.get(f"{second.url}{path}")
        assert served.status_code == 200
        assert Image.open(io.BytesIO(served.content)).size == (1024, 1024)
        assert hashlib.sha256(served.content).hexdigest() in path
        assert httpx.get(f"{first.url}{path}").content == served.content
        # Neither replica kept a copy on its own disk.
        assert not any((tmp_path / name / "images").exists() for name in ("a", "b"))
        assert_a_price_set_on_one_replica_is_charged_by_the_other(first, second)
    finally:
        for replica in replicas:
            replica.stop()


def assert_a_price_set_on_one_replica_is_charged_by_the_other(
    first: ServeProcess, second: ServeProcess
) -> None:
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    key = httpx.post(
        f"{first.url}/admin/keys", headers=admin, json={"name": "buyer", "quota_usd": "1"}
    ).json()
    price = {"price": {"per_image": {"default": 0.25}}}
    assert httpx.put(f"{first.url}/admin/prices/demo", headers=admin, json=price).status_code == 200
    changed = time.monotonic()
    buyer = OpenAI(base_url=f"{second.url}/v1", api_key=key["key"], max_retries=0)
    while True:
        buyer.images.generate(model="demo", prompt="a kite", size="1024x1024", response_format="b64_json")
        balance = Decimal(
            httpx.get(f"{second.url}/admin/keys/{key['id']}", headers=admin).json()["balance_usd"]
        )
        if balance < 1:
            break
        assert time.monotonic() - changed < 5, "the other replica still served at the old price after 5 s"
        time.sleep(0.25)
    assert balance == Decimal("0.75")
    assert time.monotonic() - changed < 5
