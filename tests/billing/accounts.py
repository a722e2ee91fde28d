"""Sync helpers for end-to-end accounts tests: make keys and groups, read balances and the ledger.

The openai SDK drives gateways synchronously, so these run each database call on a fresh
event loop with a short-lived engine of their own (as another process would).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from imagegate.billing.ledger import Ledger, LedgerEntry
from imagegate.db.engine import create_engine
from imagegate.db.groups import Group, GroupStore
from imagegate.db.key_values import ApiKey
from imagegate.db.keys import KeyStore

T = TypeVar("T")

#: The price these tests give the (free by default) demo model, in micro-USD per image.
DEMO_PRICE = 10_000
#: Settings overrides that price the demo model at `DEMO_PRICE`.
PRICED_DEMO = {"models": {"demo": {"sizes": "custom", "price": {"per_image": {"default": "0.01"}}}}}
#: The same as an imagegate.toml, for gateways started as processes.
PRICED_DEMO_TOML = '[models.demo]\nsizes = "custom"\nprice = { per_image = { default = "0.01" } }\n'


def with_engine(url: str, action: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    async def run() -> T:
        engine = create_engine(url)
        try:
            return await action(engine)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def make_key(url: str, name: str = "test", **fields: Any) -> tuple[ApiKey, str]:
    return with_engine(url, lambda engine: KeyStore(engine).create(name, **fields))


def update_key(url: str, key_id: str, **fields: Any) -> ApiKey | None:
    return with_engine(url, lambda engine: KeyStore(engine).update(key_id, **fields))


def make_group(url: str, name: str, **fields: Any) -> Group:
    return with_engine(url, lambda engine: GroupStore(engine).create(name, **fields))


def money(url: str, key_id: str) -> tuple[int | None, int]:
    """The key's balance and the sum of its ledger (always equal for a limited key)."""

    async def read(engine: AsyncEngine) -> tuple[int | None, int]:
        ledger = Ledger(engine)
        return await ledger.balance(key_id), await ledger.total(key_id)

    return with_engine(url, read)


def entries(url: str, key_id: str | None = None, request_id: str | None = None) -> list[LedgerEntry]:
    return with_engine(url, lambda engine: Ledger(engine).entries(key_id, request_id))


def kinds(url: str, request_id: str) -> list[tuple[str, int]]:
    return [(entry.kind, entry.amount_micros) for entry in entries(url, request_id=request_id)]
