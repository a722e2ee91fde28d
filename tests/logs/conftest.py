"""The request log's tests run on SQLite and PostgreSQL with the database fixtures of tests/db."""

from __future__ import annotations

from tests.db.conftest import database_url, engine

__all__ = ["database_url", "engine"]
