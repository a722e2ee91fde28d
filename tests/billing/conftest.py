"""The database fixtures of tests/db (SQLite and PostgreSQL, fresh per module) for billing tests."""

from tests.db.conftest import database_url, engine

__all__ = ["database_url", "engine"]
