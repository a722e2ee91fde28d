"""The database fixtures of tests/db (SQLite and PostgreSQL, migrated, emptied after each test)."""

from tests.db.conftest import database_url, engine

__all__ = ["database_url", "engine"]
