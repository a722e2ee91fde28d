"""Appending a row to the ledger table: the one write every movement of money shares.

The billing layer decides what moves (holds, settles, releases); the key store grants quota. Both
append through here, in the same transaction that moves the key's balance by the same amount.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from imagegate.db.tables import LedgerRow

Kind = Literal["grant", "hold", "release", "charge"]


async def record(
    connection: AsyncConnection, key_id: str, request_id: str | None, kind: Kind, amount: int
) -> None:
    """Append a ledger row; the caller moves the balance by ``amount`` in the same transaction."""
    await connection.execute(
        insert(LedgerRow).values(
            key_id=key_id,
            request_id=request_id,
            kind=kind,
            amount_micros=amount,
            created_at=datetime.now(UTC),
        )
    )
