"""Migrations: they run from any thread, and they build exactly what tables.py describes."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from imagegate.db import migrate
from imagegate.db.tables import metadata


def test_a_new_database_has_no_revision_until_upgraded(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'nested' / 'fresh.db'}"
    assert migrate.current_revision(url) is None
    migrate.upgrade(url)
    assert migrate.current_revision(url) == migrate.head_revision()


async def test_upgrade_from_a_thread_while_a_loop_runs_elsewhere(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'threaded.db'}"
    await asyncio.to_thread(migrate.upgrade, url)
    assert await asyncio.to_thread(migrate.current_revision, url) == migrate.head_revision()


def test_upgrade_in_many_threads_at_once(database_url: str) -> None:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            migrate.upgrade(database_url)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert migrate.current_revision(database_url) == migrate.head_revision()


async def test_tables_match_the_migrations(engine: AsyncEngine) -> None:
    def diff(connection: Connection) -> list[object]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))

    async with engine.connect() as connection:
        assert await connection.run_sync(diff) == []
