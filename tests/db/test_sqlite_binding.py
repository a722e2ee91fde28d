"""SQLite binds None and bools through ready adapters, and stores exactly what it did without."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from imagegate.db.engine import create_engine


async def test_none_and_bools_bind_as_null_and_integers(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'binding.db'}")
    # Without these, every NULL and bool bound raised (and discarded) an AttributeError first.
    for kind in (type(None), bool):
        assert (kind, sqlite3.PrepareProtocol) in sqlite3.adapters, kind
    try:
        async with engine.begin() as connection:
            await connection.exec_driver_sql("CREATE TABLE t (a, b, c)")
            await connection.exec_driver_sql("INSERT INTO t VALUES (?, ?, ?)", (None, True, False))
            stored = (
                await connection.exec_driver_sql("SELECT typeof(a), a, typeof(b), b, typeof(c), c FROM t")
            ).one()
    finally:
        await engine.dispose()
    assert tuple(stored) == ("null", None, "integer", 1, "integer", 0)
