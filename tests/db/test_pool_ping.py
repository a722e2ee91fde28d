"""PostgreSQL's pool checks a connection before use only once it lay idle (``_ping_when_idle``):
one whose server side was closed meanwhile (a restart, an idle-connection reaper) is replaced
before anyone uses it; one in steady use is not pinged at all."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from imagegate.db.engine import create_engine
from tests.db.conftest import POSTGRES_ADMIN_DSN, _create_postgres_database, _drop_postgres_database


@pytest.fixture
def postgres_url() -> Iterator[str]:
    name = _create_postgres_database()  # skips without PostgreSQL, as the other database tests do
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        _drop_postgres_database(name)


async def terminate(pid: int) -> None:
    admin = await asyncpg.connect(POSTGRES_ADMIN_DSN)
    try:
        await admin.execute("SELECT pg_terminate_backend($1)", pid)
    finally:
        await admin.close()


async def test_an_idle_connection_closed_by_the_server_is_replaced_before_use(postgres_url: str) -> None:
    engine = create_engine(postgres_url, ping_after_idle_s=0.2)
    try:
        async with engine.connect() as connection:
            first = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        await terminate(first)  # the pooled connection is now dead on the server's side
        await asyncio.sleep(0.3)
        async with engine.connect() as connection:
            second = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        assert second != first  # pinged, found dead, replaced: the query itself never failed
    finally:
        await engine.dispose()


async def test_a_connection_in_steady_use_is_not_pinged(postgres_url: str) -> None:
    # Without a ping, a connection the server closed a moment ago fails its next use once; the
    # pool then replaces it. That is the trade for a round trip less per transaction.
    engine = create_engine(postgres_url, ping_after_idle_s=60)
    try:
        async with engine.connect() as connection:
            first = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        await terminate(first)
        await asyncio.sleep(0.1)
        with pytest.raises(DBAPIError):
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        async with engine.connect() as connection:
            assert (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one() != first
    finally:
        await engine.dispose()
