"""Statements compiled to positional SQL: the bind order is reported, and a wrong one refused."""

from __future__ import annotations

import pytest
from sqlalchemy import bindparam, update
from sqlalchemy.dialects import postgresql, sqlite

from imagegate.db.positional import positional_insert, positional_sql, positional_sql_in
from imagegate.db.tables import ApiKeyRow, LedgerRow

# The SET clause binds before the WHERE clause, whatever order the names are written in.
MOVE = (
    update(ApiKeyRow)
    .where(ApiKeyRow.id == bindparam("key"))
    .values(balance_micros=ApiKeyRow.balance_micros + bindparam("delta"))
)


@pytest.mark.parametrize(
    ("dialect", "marker"), [(sqlite.dialect(), "?"), (postgresql.asyncpg.dialect(), "$1")]
)
def test_positional_sql_reports_the_bind_order(dialect: object, marker: str) -> None:
    sql, order = positional_sql(MOVE, dialect)  # type: ignore[arg-type]

    assert order == ("delta", "key")
    assert marker in sql and ":delta" not in sql


def test_positional_sql_in_refuses_another_order() -> None:
    assert positional_sql_in(MOVE, sqlite.dialect(), ("delta", "key")).startswith("UPDATE api_keys")
    with pytest.raises(RuntimeError, match=r"binds \('delta', 'key'\), expected \('key', 'delta'\)"):
        positional_sql_in(MOVE, sqlite.dialect(), ("key", "delta"))


def test_positional_insert_takes_the_columns_in_the_tables_order_only() -> None:
    columns = ("key_id", "request_id", "kind", "amount_micros", "created_at")  # the table's order
    sql = positional_insert(LedgerRow, sqlite.dialect(), columns)
    assert sql.startswith("INSERT INTO ledger (key_id, request_id, kind, amount_micros, created_at)")
    assert sql.endswith("VALUES (?, ?, ?, ?, ?)")
    with pytest.raises(RuntimeError, match="expected"):
        positional_insert(LedgerRow, sqlite.dialect(), ("request_id", "key_id", "kind", "amount_micros"))
