"""Alembic environment for imagegate, driven from code by `imagegate.db.migrate` (no alembic.ini).

The database URL comes from ``config.attributes["database_url"]`` (or the ``sqlalchemy.url``
option), and may name any async driver the engine supports: ``sqlite+aiosqlite`` or
``postgresql+asyncpg``. Migrations themselves are synchronous code, run through
``AsyncConnection.run_sync``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from imagegate.db.engine import create_engine
from imagegate.db.migrate import run_coroutine_sync
from imagegate.db.tables import metadata

# Arbitrary but fixed: every replica that starts at once agrees on the same lock, so exactly one
# runs the migrations and the others find the schema already at head.
POSTGRES_MIGRATION_LOCK = 0x1A6E6A7E


def _database_url() -> str:
    config = context.config
    url = config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database URL given to the imagegate migrations")
    return str(url)


def _run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        compare_type=True,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Held until the migration transaction commits.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": POSTGRES_MIGRATION_LOCK})
        context.run_migrations()


async def _run_online(url: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run_migrations)
    finally:
        await engine.dispose()


def _run_offline(url: str) -> None:
    context.configure(url=url, target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    _run_offline(_database_url())
else:
    run_coroutine_sync(lambda: _run_online(_database_url()))
