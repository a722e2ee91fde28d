"""PostgreSQL's pool checks a connection before use only once it lay idle (``_ping_when_idle``):
one whose server side was closed meanwhile (a restart, an idle-connection reaper) is replaced
before anyone uses it; one in steady use is not pinged at all."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from imagegate.db.engine import create_engine
from tests.db.conftest import _admin_execute, postgres_url

__all__ = ["postgres_url"]


async def backend_pid(engine: AsyncEngine) -> int:
    """The server process behind the connection the pool hands out next (then returned)."""
    async with engine.connect() as connection:
        return int((await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def terminate(pid: int) -> None:
    await _admin_execute(f"SELECT pg_terminate_backend({int(pid)})")


async def test_an_idle_connection_closed_by_the_server_is_replaced_before_use(postgres_url: str) -> None:
    engine = create_engine(postgres_url, ping_after_idle_s=0.2)
    try:
        first = await backend_pid(engine)
        await terminate(first)  # the pooled connection is now dead on the server's side
        await asyncio.sleep(0.3)
        assert await backend_pid(engine) != first  # pinged, found dead, replaced: the query never failed
    finally:
        await engine.dispose()


async def test_a_connection_in_steady_use_is_not_pinged(postgres_url: str) -> None:
    # Without a ping, a connection the server closed a moment ago fails its next use once; the
    # pool then replaces it. That is the trade for a round trip less per transaction.
    engine = create_engine(postgres_url, ping_after_idle_s=60)
    try:
        first = await backend_pid(engine)
        await terminate(first)
        await asyncio.sleep(0.1)
        with pytest.raises(DBAPIError):
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        assert await backend_pid(engine) != first
    finally:
        await engine.dispose()
