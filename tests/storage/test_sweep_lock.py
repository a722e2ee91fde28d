"""One sweeper at a time: the lock on SQLite (a file), PostgreSQL (advisory) and Redis (a lease)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncEngine

from imagegate.db.engine import create_engine
from imagegate.settings import load_settings
from imagegate.storage.disk import DiskStore
from imagegate.storage.lock import sweep_lock
from imagegate.storage.retention import RetentionSweeper
from tests.conftest import service_missing
from tests.db.conftest import postgres_url

__all__ = ["postgres_url"]

REDIS_URL = os.environ.get("IMAGEGATE_TEST_REDIS", "redis://127.0.0.1:6379/0")


@pytest.fixture
async def postgres_engine(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(postgres_url)
    yield engine
    await engine.dispose()


async def redis_or_skip() -> None:
    client = Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        service_missing(f"Redis not reachable at {REDIS_URL}: {exc}")
    finally:
        await client.aclose()


async def assert_exclusive(settings_kwargs: dict[str, object], engine: AsyncEngine | None) -> None:
    settings = load_settings(**settings_kwargs)  # type: ignore[arg-type]
    async with sweep_lock(settings, engine) as first:
        assert first
        async with sweep_lock(settings, engine) as second:
            assert not second
    async with sweep_lock(settings, engine) as again:
        assert again  # released at the end of the block


async def test_file_lock_on_sqlite(tmp_path: Path) -> None:
    await assert_exclusive({"data_dir": tmp_path}, None)


async def test_postgres_advisory_lock(tmp_path: Path, postgres_engine: AsyncEngine) -> None:
    await assert_exclusive({"data_dir": tmp_path}, postgres_engine)


async def test_redis_lease(tmp_path: Path) -> None:
    await redis_or_skip()
    await assert_exclusive({"data_dir": tmp_path, "redis_url": REDIS_URL}, None)


async def test_a_sweeper_that_does_not_get_the_lock_skips_its_round(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, image_retention_days=1)
    (tmp_path / "images" / "20200101").mkdir(parents=True)
    (tmp_path / "images" / "20200101" / f"{'a' * 64}.png").write_bytes(b"x")
    sweeper = RetentionSweeper(DiskStore(tmp_path / "images"), settings, None)
    async with sweep_lock(settings, None) as held:
        assert held
        assert await sweeper.sweep_once() is None
    report = await sweeper.sweep_once()
    assert report is not None and report.images == 1
