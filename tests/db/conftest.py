"""Database fixtures: every DB test runs on SQLite and on a real PostgreSQL.

``database_url`` is an empty database, fresh per test module: a SQLite file, or a
``imagegate_test_<hex>`` database created on the PostgreSQL server named by
``IMAGEGATE_TEST_POSTGRES`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``) and
dropped afterwards. The PostgreSQL case skips when that server cannot be reached (and fails under
CI=true: see ``tests.conftest.service_missing``).

``engine`` is that database migrated to head, emptied again after each test.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
from sqlalchemy import delete
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from imagegate.db import migrate
from imagegate.db.engine import create_engine
from imagegate.db.tables import metadata
from tests.conftest import service_missing

POSTGRES_ADMIN_DSN = os.environ.get(
    "IMAGEGATE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)


async def _admin_execute(sql: str) -> None:
    connection = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=5)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


def _create_postgres_database() -> str:
    name = f"imagegate_test_{secrets.token_hex(6)}"
    try:
        asyncio.run(_admin_execute(f'CREATE DATABASE "{name}"'))
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        service_missing(f"PostgreSQL not reachable at {POSTGRES_ADMIN_DSN}: {exc}")
    return name


def _drop_postgres_database(name: str) -> None:
    # FORCE (PostgreSQL 13+) ends connections a failed test may have leaked.
    asyncio.run(_admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextlib.contextmanager
def scratch_postgres_database() -> Iterator[str]:
    """A new, empty database on the test PostgreSQL server (its asyncpg URL), dropped afterwards;
    skips without the server (fails under CI=true)."""
    name = _create_postgres_database()
    url = make_url(POSTGRES_ADMIN_DSN).set(drivername="postgresql+asyncpg", database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        _drop_postgres_database(name)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'imagegate.db'}"
        return
    with scratch_postgres_database() as url:
        yield url


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """An empty PostgreSQL database for one test (not migrated): for tests on PostgreSQL alone."""
    with scratch_postgres_database() as url:
        yield url


@pytest.fixture
async def postgres_engine(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on a PostgreSQL database of its own, migrated to head: for PostgreSQL-only tests."""
    migrate.upgrade(postgres_url)
    engine = create_engine(postgres_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    migrate.upgrade(database_url)  # from inside a running loop: exercises the threaded path
    engine = create_engine(database_url)
    try:
        yield engine
    finally:
        async with engine.begin() as connection:
            for table in reversed(metadata.sorted_tables):
                await connection.execute(delete(table))
        await engine.dispose()
