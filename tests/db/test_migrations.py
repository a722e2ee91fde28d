"""Migrations: they run from any thread, and they build exactly what tables.py describes."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from imagegate.billing.leases import release_stale
from imagegate.billing.ledger import Ledger
from imagegate.db import migrate
from imagegate.db.engine import create_engine
from imagegate.db.tables import metadata
from tests.db.conftest import POSTGRES_ADMIN_DSN, _create_postgres_database, _drop_postgres_database


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


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of its own, never migrated (the module's is migrated by the tests above)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
        return
    name = _create_postgres_database()
    try:
        url = make_url(POSTGRES_ADMIN_DSN).set(drivername="postgresql+asyncpg", database=name)
        yield url.render_as_string(hide_password=False)
    finally:
        _drop_postgres_database(name)


async def test_holds_open_before_owners_existed_become_releasable(empty_url: str) -> None:
    """0005 copies the holds with no release after them into ledger_holds, owner unknown."""
    database_url = empty_url
    await asyncio.to_thread(migrate.upgrade, database_url, "0003_request_logs")
    engine = create_engine(database_url)
    now = datetime.now(UTC)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO api_keys (id, name, key_hash, key_prefix, created_at, quota_micros,"
                    " balance_micros, enabled) VALUES ('key_1', 'k', 'h', 'p', :now, 100000, 30000, true)"
                ),
                {"now": now},
            )
            rows = [
                ("grant", None, 100_000),
                ("hold", "req_done", -40_000),
                ("release", "req_done", 40_000),
                ("charge", "req_done", -40_000),
                ("hold", "req_open", -30_000),
            ]
            for kind, request_id, amount in rows:
                await connection.execute(
                    text(
                        "INSERT INTO ledger (key_id, request_id, kind, amount_micros, created_at)"
                        " VALUES ('key_1', :request_id, :kind, :amount, :now)"
                    ),
                    {"request_id": request_id, "kind": kind, "amount": amount, "now": now},
                )
        await asyncio.to_thread(migrate.upgrade, database_url)
        released = await release_stale(engine)
        assert [(hold.request_id, hold.amount_micros, hold.owner) for hold in released] == [
            ("req_open", 30_000, None)
        ]
        ledger = Ledger(engine)
        assert await ledger.balance("key_1") == await ledger.total("key_1") == 60_000
    finally:
        await engine.dispose()
