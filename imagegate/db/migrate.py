"""Schema migrations, run from code: the CLI and the server call `upgrade()` before using the DB.

    upgrade("sqlite+aiosqlite:///data/imagegate.db")     # idempotent; a no-op at head
    current_revision("sqlite+aiosqlite:///data/imagegate.db")  # "0001", or None when empty

Both are synchronous and safe to call from any thread, including one whose event loop is
running (e.g. from inside async code): the database work then gets a thread of its own.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from imagegate.db.engine import create_engine

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

T = TypeVar("T")

# Alembic keeps the running migration in module globals (`alembic.context`), so two migrations
# in one process must not overlap. Across processes, PostgreSQL takes an advisory lock (env.py).
_alembic_lock = threading.Lock()


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the database at ``database_url`` up to ``revision`` (default: the newest)."""
    with _alembic_lock:
        command.upgrade(alembic_config(database_url), revision)


def current_revision(database_url: str) -> str | None:
    """The revision the database is at, or None when it has never been migrated."""

    async def read() -> str | None:
        engine = create_engine(database_url)
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(_revision_of)
        finally:
            await engine.dispose()

    return run_coroutine_sync(read)


def head_revision() -> str | None:
    """The newest revision the installed code knows about."""
    return ScriptDirectory.from_config(alembic_config("")).get_current_head()


def alembic_config(database_url: str) -> Config:
    """An Alembic config built in code, so an installed package needs no alembic.ini."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    # Passed as an attribute, not an ini option: ini values are %-interpolated, and URL-encoded
    # passwords contain '%'.
    config.attributes["database_url"] = database_url
    return config


def run_coroutine_sync(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run the coroutine ``factory()`` makes to completion and return its result, from sync code.

    ``asyncio.run`` refuses to start inside a thread whose loop is already running, so in that
    case the coroutine runs on a fresh loop in a short-lived worker thread instead.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="imagegate-db") as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()


def _revision_of(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()
