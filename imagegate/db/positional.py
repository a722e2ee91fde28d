"""Statements compiled once to SQL text with positional parameters, for the hot write paths.

The ledger's batches, the request log's rows and details, and the rows committed with a quota
hold are executed as plain text on a raw connection (sqlite3, or asyncpg through the driver-level
``exec_driver_sql``), so each is compiled once instead of at every batch. Positional parameters
bind in an order the compiler chooses; these helpers return that order, or insist on it, so a
tuple built for the statement can never put a value into the wrong column.

    sql, order = positional_sql(insert(table).values(...), dialect)
    sql = positional_sql_in(statement, dialect, ("amount", "key", "floor"))
    sql = positional_insert(LedgerRow, dialect, ("key_id", "request_id", ...))
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Dialect, bindparam, insert
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler


def positional_sql(statement: ClauseElement, dialect: Dialect) -> tuple[str, tuple[str, ...]]:
    """``statement``'s SQL text for ``dialect``, and the names of its parameters in bind order."""
    compiled = statement.compile(dialect=dialect)
    assert isinstance(compiled, SQLCompiler)
    return str(compiled), tuple(compiled.positiontup or ())


def positional_sql_in(statement: ClauseElement, dialect: Dialect, order: tuple[str, ...]) -> str:
    """``statement``'s SQL text, checked to bind its parameters exactly in ``order``."""
    sql, bound = positional_sql(statement, dialect)
    if bound != order:
        raise RuntimeError(f"statement binds {bound}, expected {order}: {sql}")
    return sql


def positional_insert(table: Any, dialect: Dialect, columns: tuple[str, ...]) -> str:
    """A one-row ``INSERT`` of ``columns`` into ``table``, checked to bind them in that order (an
    insert binds in the table's column order, so ``columns`` must follow it)."""
    statement = insert(table).values({name: bindparam(name) for name in columns})
    return positional_sql_in(statement, dialect, columns)
