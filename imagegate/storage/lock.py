"""A lock that lets one process in the whole deployment sweep the store at a time.

Replicas share Redis or PostgreSQL, so the lock lives there: a Redis key with a lease when
IMAGEGATE_REDIS_URL is set, else a PostgreSQL session advisory lock. SQLite means one machine,
so a file lock in the data dir is enough. Taking the lock never waits: a process that does not
get it skips this round (another one is sweeping).

    async with sweep_lock(settings, engine) as held:
        if held:
            ...
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
from collections.abc import AsyncIterator

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from imagegate.settings import Settings

_NAME = "imagegate:storage-gc"
# A stable 64-bit number for pg_try_advisory_lock (the first 8 bytes of the name, as ASCII).
_PG_KEY = int.from_bytes(b"imgst-gc", "big") & 0x7FFF_FFFF_FFFF_FFFF
# A crashed sweeper's Redis lease ends by itself; a live one renews nothing, so this bounds a sweep.
_REDIS_LEASE_MS = 15 * 60 * 1000
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


@contextlib.asynccontextmanager
async def sweep_lock(settings: Settings, engine: AsyncEngine | None) -> AsyncIterator[bool]:
    if settings.redis_url:
        lock = _redis_lock(settings.redis_url)
    elif engine is not None and engine.dialect.name == "postgresql":
        lock = _postgres_lock(engine)
    else:
        lock = _file_lock(settings.data_dir / ".storage-gc.lock")
    async with lock as held:
        yield held


@contextlib.asynccontextmanager
async def _redis_lock(url: str) -> AsyncIterator[bool]:
    from redis.asyncio import Redis

    client = Redis.from_url(url)
    token = secrets.token_hex(16)
    try:
        held = bool(await client.set(_NAME, token, nx=True, px=_REDIS_LEASE_MS))
        try:
            yield held
        finally:
            if held:
                await client.eval(_RELEASE, 1, _NAME, token)  # type: ignore[misc]
    finally:
        await client.aclose()


@contextlib.asynccontextmanager
async def _postgres_lock(engine: AsyncEngine) -> AsyncIterator[bool]:
    # A session lock: held by this connection until unlocked or the connection dies.
    async with engine.connect() as conn:
        held = bool((await conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": _PG_KEY})).scalar())
        await conn.commit()
        try:
            yield held
        finally:
            if held:
                await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_KEY})
                await conn.commit()


@contextlib.asynccontextmanager
async def _file_lock(path: os.PathLike[str]) -> AsyncIterator[bool]:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            held = True
        except BlockingIOError:
            held = False
        try:
            yield held
        finally:
            if held:
                fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
