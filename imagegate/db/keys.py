"""Client API keys: create, list, revoke, authenticate.

A secret looks like ``sk-<43 url-safe chars>``; it is returned once by `KeyStore.create` and only
its SHA-256 is stored. A fast unsalted hash is enough because the secret carries 256 random bits:
there is nothing to brute-force, and authentication stays one indexed lookup per request.

    store = KeyStore(engine)
    key, secret = await store.create("ci", models=["gpt-image-2"])
    assert (await store.authenticate(secret)) == key
    await store.revoke(key.id)
"""

from __future__ import annotations

import builtins
import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Row, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from imagegate.db.tables import ApiKeyRow

SECRET_PREFIX = "sk-"
DISPLAY_PREFIX_LENGTH = 7  # "sk-" and four characters: enough to tell keys apart, useless to guess
MAX_NAME_LENGTH = 200
# Real secrets are 46 characters; anything far longer is not worth hashing or looking up.
MAX_SECRET_LENGTH = 256


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A client key as the rest of the gateway sees it: never the secret, never the hash."""

    id: str
    name: str
    prefix: str
    models: list[str] | None
    created_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def allows_model(self, model: str) -> bool:
        """Whether this key may use the public model name ``model`` (None means every model)."""
        return self.models is None or model in self.models


def hash_key(secret: str) -> str:
    """The hex SHA-256 of a secret: what the database stores and looks keys up by."""
    return hashlib.sha256(secret.encode()).hexdigest()


class KeyStore:
    """API keys in the database behind ``engine``; the caller owns the engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    # `list` below is a method, so annotations in this class spell the builtin out.
    async def create(self, name: str, models: builtins.list[str] | None = None) -> tuple[ApiKey, str]:
        """Store a new key; returns it with its secret, which cannot be recovered later."""
        name = name.strip()
        if not name or len(name) > MAX_NAME_LENGTH:
            raise ValueError(f"a key name needs 1 to {MAX_NAME_LENGTH} characters")
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        key = ApiKey(
            id="key_" + secrets.token_hex(8),
            name=name,
            prefix=secret[:DISPLAY_PREFIX_LENGTH],
            models=_normalize_models(models),
            created_at=datetime.now(UTC),
            revoked_at=None,
        )
        statement = insert(ApiKeyRow).values(
            id=key.id,
            name=key.name,
            key_hash=hash_key(secret),
            key_prefix=key.prefix,
            models=key.models,
            created_at=key.created_at,
            revoked_at=None,
        )
        async with self._engine.begin() as connection:
            await connection.execute(statement)
        return key, secret

    async def list(self) -> builtins.list[ApiKey]:
        """Every key, revoked ones included, oldest first."""
        query = select(*_PUBLIC_COLUMNS).order_by(ApiKeyRow.created_at, ApiKeyRow.id)
        async with self._engine.connect() as connection:
            rows = (await connection.execute(query)).all()
        return [_to_domain(row) for row in rows]

    async def get(self, key_id: str) -> ApiKey | None:
        """One key by id, revoked or not."""
        query = select(*_PUBLIC_COLUMNS).where(ApiKeyRow.id == key_id)
        async with self._engine.connect() as connection:
            row = (await connection.execute(query)).first()
        return None if row is None else _to_domain(row)

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
        """The active key whose secret this is, or None for an unknown or revoked secret."""
        if not secret or len(secret) > MAX_SECRET_LENGTH:
            return None
        # Looking up by hash leaks nothing through timing: an attacker cannot steer the hash.
        query = select(*_PUBLIC_COLUMNS).where(
            ApiKeyRow.key_hash == hash_key(secret), ApiKeyRow.revoked_at.is_(None)
        )
        async with self._engine.connect() as connection:
            row = (await connection.execute(query)).first()
        return None if row is None else _to_domain(row)

    async def count_active(self) -> int:
        query = select(func.count()).select_from(ApiKeyRow).where(ApiKeyRow.revoked_at.is_(None))
        async with self._engine.connect() as connection:
            return int((await connection.execute(query)).scalar_one())


# Everything but the hash: it has no use outside a lookup, so it never leaves the database.
_PUBLIC_COLUMNS = (
    ApiKeyRow.id,
    ApiKeyRow.name,
    ApiKeyRow.key_prefix,
    ApiKeyRow.models,
    ApiKeyRow.created_at,
    ApiKeyRow.revoked_at,
)


def _normalize_models(models: builtins.list[str] | None) -> builtins.list[str] | None:
    if models is None:
        return None
    cleaned = list(dict.fromkeys(name.strip() for name in models if name.strip()))
    if not cleaned:
        # An empty allow-list would make a key that can do nothing; None is how to say "all".
        raise ValueError("models must name at least one model, or be None for every model")
    return cleaned


def _to_domain(row: Row[str, str, str, list[str] | None, datetime, datetime | None]) -> ApiKey:
    key_id, name, prefix, models, created_at, revoked_at = row
    return ApiKey(
        id=key_id,
        name=name,
        prefix=prefix,
        models=None if models is None else list(models),
        created_at=created_at,
        revoked_at=revoked_at,
    )
