"""A throwaway database for one bench run: a SQLite file, or a database on the local PostgreSQL.

with scratch_database(postgres=True, prefix="bench_tasks", folder=tmp) as url:
    ...   # url: an async SQLAlchemy URL; the PostgreSQL database is dropped afterwards
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

POSTGRES_ADMIN = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"


async def admin_database(statement: str) -> None:
    """Run ``statement`` (CREATE or DROP DATABASE) on the server, outside any transaction."""
    engine = create_async_engine(POSTGRES_ADMIN, isolation_level="AUTOCOMMIT")
    async with engine.connect() as connection:
        await connection.execute(text(statement))
    await engine.dispose()


@contextlib.contextmanager
def scratch_database(*, postgres: bool, prefix: str, folder: Path) -> Iterator[str]:
    if not postgres:
        yield f"sqlite+aiosqlite:///{folder / 'imagegate.db'}"
        return
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    asyncio.run(admin_database(f'CREATE DATABASE "{name}"'))
    try:
        yield POSTGRES_ADMIN.rsplit("/", 1)[0] + "/" + name
    finally:
        asyncio.run(admin_database(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
