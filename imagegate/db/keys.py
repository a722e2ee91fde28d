"""Client API keys: create, list, update, revoke, authenticate.

A secret looks like ``sk-<43 url-safe chars>``; it is returned once by `KeyStore.create` and only
its SHA-256 is stored. A fast unsalted hash is enough because the secret carries 256 random bits:
there is nothing to brute-force, and authentication stays one indexed lookup per request.

A key may belong to a group and carry its own limits: a quota in USD (None: unlimited), an
expiry, allowed models, requests per minute, an IP allowlist and an enabled flag. Quota moves
only through the ledger (`imagegate.billing.ledger`), so a key's balance is always the sum of
its ledger rows.

    store = KeyStore(engine)
    key, secret = await store.create("ci", group="team-a", quota_usd=Decimal("5"), models=["gpt-image-2"])
    assert (await store.authenticate(secret)) == key
    await store.update(key.id, add_quota_usd=Decimal("10"), rpm=60)
    await store.revoke(key.id)
"""

from __future__ import annotations

import builtins
import hashlib
import secrets
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from imagegate.db.groups import (
    check_name,
    check_response_format,
    check_rpm,
    normalize_models,
    resolve_group_id,
)
from imagegate.db.key_values import (
    ApiKey,
    check_expiry,
    normalize_allowlist,
    to_domain,
)
from imagegate.db.ledger_rows import record
from imagegate.db.tables import ApiKeyRow, GroupRow
from imagegate.money import to_decimal, to_micros

SECRET_PREFIX = "sk-"
DISPLAY_PREFIX_LENGTH = 7  # "sk-" and four characters: enough to tell keys apart, useless to guess
MAX_NAME_LENGTH = 200
# Real secrets are 46 characters; anything far longer is not worth hashing or looking up.
MAX_SECRET_LENGTH = 256
# The most a key's quota may reach: generous for any real account, and far inside the 64-bit
# micro-USD columns (9.2e12 USD), so no top-up can overflow them.
MAX_QUOTA_USD = Decimal(1_000_000_000)
_MAX_QUOTA_MICROS = int(MAX_QUOTA_USD) * 1_000_000

UPDATABLE = frozenset(
    {
        *("name", "enabled", "admin", "quota_usd", "add_quota_usd", "models", "rpm"),
        *("expires_at", "ip_allowlist", "group", "response_format"),
    }
)


class QuotaCeiling(ValueError):
    """A top-up that would lift a key's quota past `MAX_QUOTA_USD`."""


def hash_key(secret: str) -> str:
    """The hex SHA-256 of a secret: what the database stores and looks keys up by."""
    return hashlib.sha256(secret.encode()).hexdigest()


class KeyStore:
    """API keys in the database behind ``engine``; the caller owns the engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    # `list` below is a method, so annotations in this class spell the builtin out.
    async def create(
        self,
        name: str,
        models: builtins.list[str] | None = None,
        *,
        group: str | None = None,
        quota_usd: Decimal | str | int | None = None,
        rpm: int | None = None,
        expires_at: datetime | None = None,
        ip_allowlist: builtins.list[str] | None = None,
        response_format: str | None = None,
        admin: bool = False,
    ) -> tuple[ApiKey, str]:
        """Store a new key; returns it with its secret, which cannot be recovered later.

        ``group`` is a group's name or id; ``quota_usd`` None makes the key unlimited, a number
        grants that much through the ledger. ``admin`` makes an admin key (admin API, console).
        """
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        key_id = "key_" + secrets.token_hex(8)
        quota = _quota_micros(quota_usd)
        values = {
            "id": key_id,
            "name": check_name(name),
            "key_hash": hash_key(secret),
            "key_prefix": secret[:DISPLAY_PREFIX_LENGTH],
            "models": normalize_models(models),
            "created_at": datetime.now(UTC),
            "revoked_at": None,
            "quota_micros": quota,
            "balance_micros": quota or 0,
            "expires_at": check_expiry(expires_at),
            "rpm": check_rpm(rpm),
            "ip_allowlist": normalize_allowlist(ip_allowlist),
            "enabled": True,
            "response_format": check_response_format(response_format),
            "admin": bool(admin),
        }
        async with self._engine.begin() as connection:
            values["group_id"] = None if group is None else await resolve_group_id(connection, group)
            await connection.execute(insert(ApiKeyRow).values(**values))
            if quota:
                await record(connection, key_id, None, "grant", quota)
            key = await _fetch(connection, _select().where(ApiKeyRow.id == key_id))
        assert key is not None
        return key, secret

    async def list(self) -> builtins.list[ApiKey]:
        """Every key, revoked ones included, oldest first."""
        query = _select().order_by(ApiKeyRow.created_at, ApiKeyRow.id)
        async with self._engine.connect() as connection:
            rows = (await connection.execute(query)).all()
        return [to_domain(row) for row in rows]

    async def get(self, key_id: str) -> ApiKey | None:
        """One key by id, revoked or not."""
        async with self._engine.connect() as connection:
            return await _fetch(connection, _select().where(ApiKeyRow.id == key_id))

    async def update(self, key_id: str, **fields: Any) -> ApiKey | None:
        """Change a key; returns it, or None when there is no such key.

        Fields: ``name``, ``enabled``, ``admin``, ``models``, ``rpm``, ``expires_at``, ``ip_allowlist``,
        ``group`` (name or id; None leaves the group), ``response_format`` (None: the group's) —
        None clears a restriction — and money:
        ``quota_usd`` sets the total quota (the balance moves by the difference, never below
        zero; None makes the key unlimited) and ``add_quota_usd`` tops a limited key up.
        Quota changes are ledger grants, written in the same transaction as the balance.
        """
        unknown = set(fields) - UPDATABLE
        if unknown:
            raise ValueError(f"unknown key fields: {', '.join(sorted(unknown))}")
        values = _plain_values(fields)
        async with self._engine.begin() as connection:
            # A no-op write first: it takes the key's row lock (PostgreSQL) or the database's
            # write lock (SQLite), so the balance read below cannot race a concurrent hold.
            lock = update(ApiKeyRow).where(ApiKeyRow.id == key_id)
            locked = await connection.execute(lock.values(balance_micros=ApiKeyRow.balance_micros))
            if locked.rowcount != 1:
                return None
            if "group" in fields:
                group = fields["group"]
                values["group_id"] = None if group is None else await resolve_group_id(connection, group)
            if "quota_usd" in fields or "add_quota_usd" in fields:
                values.update(await _requota(connection, key_id, fields))
            if values:
                await connection.execute(update(ApiKeyRow).where(ApiKeyRow.id == key_id).values(**values))
            return await _fetch(connection, _select().where(ApiKeyRow.id == key_id))

    async def revoke(self, key_id: str) -> bool:
        """Revoke a key for good; False when there is no such key or it is already revoked."""
        statement = (
            update(ApiKeyRow)
            .where(ApiKeyRow.id == key_id, ApiKeyRow.revoked_at.is_(None))
            .values(revoked_at=datetime.now(UTC))
        )
        async with self._engine.begin() as connection:
            result = await connection.execute(statement)
        return result.rowcount == 1

    async def authenticate(self, secret: str) -> ApiKey | None:
        """The unrevoked key whose secret this is, or None for an unknown or revoked secret.

        Disabled and expired keys are returned: the caller says why they cannot be used.
        """
        if not secret or len(secret) > MAX_SECRET_LENGTH:
            return None
        # Looking up by hash leaks nothing through timing: an attacker cannot steer the hash.
        query = _select().where(ApiKeyRow.key_hash == hash_key(secret), ApiKeyRow.revoked_at.is_(None))
        async with self._engine.connect() as connection:
            return await _fetch(connection, query)

    async def count_active(self) -> int:
        query = select(func.count()).select_from(ApiKeyRow).where(ApiKeyRow.revoked_at.is_(None))
        async with self._engine.connect() as connection:
            return int((await connection.execute(query)).scalar_one())


def _select() -> Select[*tuple[Any, ...]]:
    # Everything but the hash: it has no use outside a lookup, so it never leaves the database.
    return select(
        ApiKeyRow.id,
        ApiKeyRow.name,
        ApiKeyRow.key_prefix,
        ApiKeyRow.models,
        ApiKeyRow.created_at,
        ApiKeyRow.revoked_at,
        ApiKeyRow.quota_micros,
        ApiKeyRow.balance_micros,
        ApiKeyRow.expires_at,
        ApiKeyRow.rpm,
        ApiKeyRow.ip_allowlist,
        ApiKeyRow.enabled,
        ApiKeyRow.response_format,
        ApiKeyRow.admin,
        GroupRow.id.label("group_id"),
        GroupRow.name.label("group_name"),
        GroupRow.price_multiplier.label("group_price_multiplier"),
        GroupRow.models.label("group_models"),
        GroupRow.rpm.label("group_rpm"),
        GroupRow.created_at.label("group_created_at"),
        GroupRow.response_format.label("group_response_format"),
    ).select_from(ApiKeyRow.__table__.outerjoin(GroupRow.__table__, ApiKeyRow.group_id == GroupRow.id))


async def _fetch(connection: AsyncConnection, query: Select[*tuple[Any, ...]]) -> ApiKey | None:
    row = (await connection.execute(query)).first()
    return None if row is None else to_domain(row)


def _quota_micros(quota_usd: Decimal | str | int | None) -> int | None:
    if quota_usd is None:
        return None
    number = to_decimal(quota_usd)
    if number < 0:
        raise ValueError("a quota cannot be negative")
    if number > MAX_QUOTA_USD:
        raise ValueError(f"a quota may be at most {MAX_QUOTA_USD} USD")
    return to_micros(number)


def _plain_values(fields: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if "name" in fields:
        values["name"] = check_name(fields["name"])
    if "enabled" in fields:
        if not isinstance(fields["enabled"], bool):
            raise ValueError("enabled must be true or false")
        values["enabled"] = fields["enabled"]
    if "admin" in fields:
        if not isinstance(fields["admin"], bool):
            raise ValueError("admin must be true or false")
        values["admin"] = fields["admin"]
    if "models" in fields:
        values["models"] = normalize_models(fields["models"])
    if "rpm" in fields:
        values["rpm"] = check_rpm(fields["rpm"])
    if "expires_at" in fields:
        values["expires_at"] = check_expiry(fields["expires_at"])
    if "ip_allowlist" in fields:
        values["ip_allowlist"] = normalize_allowlist(fields["ip_allowlist"])
    if "response_format" in fields:
        values["response_format"] = check_response_format(fields["response_format"])
    return values


async def _requota(connection: AsyncConnection, key_id: str, fields: dict[str, Any]) -> dict[str, Any]:
    """New quota and balance for a locked key, with the grant that moves the balance."""
    query = select(ApiKeyRow.quota_micros, ApiKeyRow.balance_micros).where(ApiKeyRow.id == key_id)
    quota, balance = (await connection.execute(query)).one()
    if "quota_usd" in fields:
        new_quota = _quota_micros(fields["quota_usd"])
        if new_quota is None:
            # Unlimited: nothing is held from now on; the balance stays as the ledger says.
            return {"quota_micros": None}
        # From unlimited, the whole new quota is available; otherwise the balance moves by the
        # change in quota, never below zero (what was already spent stays spent).
        new_balance = new_quota if quota is None else max(0, balance + new_quota - quota)
    else:
        added = _quota_micros(fields["add_quota_usd"])
        if quota is None:
            raise ValueError("the key is unlimited: set quota_usd to give it a quota first")
        new_quota, new_balance = quota + (added or 0), balance + (added or 0)
        if new_quota > _MAX_QUOTA_MICROS:
            raise QuotaCeiling(f"the top-up would raise the quota past {MAX_QUOTA_USD} USD")
    if new_balance != balance:
        await record(connection, key_id, None, "grant", new_balance - balance)
    return {"quota_micros": new_quota, "balance_micros": new_balance}


__all__ = ["MAX_QUOTA_USD", "ApiKey", "KeyStore", "QuotaCeiling", "hash_key"]
