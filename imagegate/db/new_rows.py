"""New rows written inside another write's transaction: a task's row with its quota hold.

    row = NewRow(TaskRow.__table__, {"id": "task_1", ...})
    await insert_rows(connection, [row])              # through SQLAlchemy (PostgreSQL, aiosqlite)
    insert_rows_sqlite(dialect, sqlite_connection, [row])   # a raw sqlite3 connection, same values

Rows of one table with the same columns go as one executemany. The raw sqlite3 path converts
each value with the column type's own bind processor for ``dialect`` (JSON to text and so on),
so a row reads back exactly as if SQLAlchemy had written it.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Dialect, Insert, Table, bindparam, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from imagegate.db.positional import positional_sql


@dataclass(frozen=True, slots=True)
class NewRow:
    """One row to insert into ``table``; ``values`` maps column names to Python values."""

    table: Table
    values: Mapping[str, Any]


async def insert_rows(connection: AsyncConnection, rows: Iterable[NewRow]) -> None:
    for (table, _columns), values in _grouped(rows).items():
        await connection.execute(_insert(table), [dict(row) for row in values])


def insert_rows_sqlite(dialect: Dialect, connection: sqlite3.Connection, rows: Iterable[NewRow]) -> None:
    for (table, columns), values in _grouped(rows).items():
        sql, order, processors = _sqlite_insert(dialect, table, columns)
        connection.executemany(sql, [_converted(row, order, processors) for row in values])


def _converted(
    row: Mapping[str, Any], order: tuple[str, ...], processors: tuple[Callable[[Any], Any] | None, ...]
) -> tuple[Any, ...]:
    return tuple(
        row[name] if process is None else process(row[name])
        for name, process in zip(order, processors, strict=True)
    )


def _grouped(rows: Iterable[NewRow]) -> dict[tuple[Table, tuple[str, ...]], list[Mapping[str, Any]]]:
    groups: dict[tuple[Table, tuple[str, ...]], list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row.table, tuple(row.values)), []).append(row.values)
    return groups


@functools.cache
def _insert(table: Table) -> Insert:
    # Built once per table: a statement built per call is traversed anew for its cache key.
    return insert(table)


@functools.cache
def _sqlite_insert(
    dialect: Dialect, table: Table, columns: tuple[str, ...]
) -> tuple[str, tuple[str, ...], tuple[Callable[[Any], Any] | None, ...]]:
    """The insert's text, the order its parameters bind in (the table's), and their converters."""
    sql, order = positional_sql(insert(table).values({name: bindparam(name) for name in columns}), dialect)
    if sorted(order) != sorted(columns):
        raise RuntimeError(f"{table.name} insert binds {order}, expected {columns}")
    processors = tuple(table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in order)
    return sql, order, processors
