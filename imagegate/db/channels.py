"""Channels stored in the database (added through the admin API), beside those in the config file.

A stored channel has exactly the fields of :class:`~imagegate.settings.ChannelConfig`. Its
``api_key`` is kept as given (a literal, or ``env:NAME`` resolved when the catalog is built)
and never leaves this module except inside the `ChannelConfig` the catalog builds providers
from; everything shown to people carries only :func:`mask_secret`'s hint.

    store = ChannelStore(engine, versions)
    await store.create({"name": "eu", "provider": "openai", "base_url": ..., "api_key": "sk-..."})
    configs = await store.configs()          # for the catalog (settings + DB channels)
    await store.delete("eu")

Every write bumps the ``channels`` config version in its transaction and announces it, so every
process watching the version (`imagegate.db.versions.VersionWatcher`) reloads its catalog.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, Integer, String, Text, delete, insert, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Mapped, mapped_column

from imagegate.db.tables import Base, UtcDateTime
from imagegate.db.versions import ConfigVersions
from imagegate.settings import ChannelConfig


class ChannelRow(Base):
    """One upstream account or local model, as the admin API stored it."""

    __tablename__ = "channels"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    provider: Mapped[str] = mapped_column(String(64))
    base_url: Mapped[str] = mapped_column(Text, default="")
    api_key: Mapped[str] = mapped_column(Text, default="")
    models: Mapped[list[str]] = mapped_column(JSON)
    model_map: Mapped[dict[str, str]] = mapped_column(JSON)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    weight: Mapped[int] = mapped_column(Integer, default=1)
    timeout_s: Mapped[float] = mapped_column(Float, default=300.0)
    max_concurrency: Mapped[int | None] = mapped_column(Integer, nullable=True)
    options: Mapped[dict[str, Any]] = mapped_column(JSON)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ChannelExists(Exception):
    """A stored channel of that name exists already."""


@dataclass(frozen=True, slots=True)
class StoredChannel:
    """A stored channel: its raw config (``api_key`` unresolved) and when it was written."""

    fields: dict[str, Any]
    created_at: datetime
    updated_at: datetime

    @property
    def name(self) -> str:
        return str(self.fields["name"])

    @property
    def api_key_hint(self) -> str:
        return mask_secret(str(self.fields.get("api_key") or ""))

    def config(self) -> ChannelConfig:
        """The config the catalog builds a provider from (``env:NAME`` resolved now)."""
        return ChannelConfig.model_validate(self.fields)


def mask_secret(secret: str) -> str:
    """Enough of a secret to recognise it, never enough to use it: ``sk-a…wxyz``."""
    if not secret:
        return ""
    if secret.startswith("env:"):
        return secret  # a reference to the environment, not the secret itself
    if len(secret) < 12:
        return "…"
    return f"{secret[:4]}…{secret[-4:]}"


# The config fields the table has columns for (a field added to ChannelConfig later needs a
# migration before the admin API can store it).
_FIELDS = tuple(c.name for c in ChannelRow.__table__.columns if c.name not in ("created_at", "updated_at"))


class ChannelStore:
    """Stored channels in the database behind ``engine``; the caller owns the engine."""

    #: The config version every write bumps.
    VERSION = "channels"

    def __init__(self, engine: AsyncEngine, versions: ConfigVersions | None = None) -> None:
        self._engine = engine
        self.versions = versions or ConfigVersions(engine)

    async def list(self) -> builtins.list[StoredChannel]:
        query = select(ChannelRow.__table__).order_by(ChannelRow.created_at, ChannelRow.name)
        async with self._engine.connect() as connection:
            rows = (await connection.execute(query)).mappings().all()
        return [_to_stored(dict(row)) for row in rows]

    async def configs(self) -> builtins.list[ChannelConfig]:
        return [stored.config() for stored in await self.list()]

    async def get(self, name: str) -> StoredChannel | None:
        query = select(ChannelRow.__table__).where(ChannelRow.name == name)
        async with self._engine.connect() as connection:
            row = (await connection.execute(query)).mappings().first()
        return None if row is None else _to_stored(dict(row))

    async def create(self, fields: dict[str, Any]) -> StoredChannel:
        """Store a channel; ``fields`` must be valid for `ChannelConfig` (raw ``api_key``)."""
        values = _validated(fields)
        now = datetime.now(UTC)
        try:
            async with self._engine.begin() as connection:
                await connection.execute(insert(ChannelRow).values(**values, created_at=now, updated_at=now))
                await self.versions.bump(connection, self.VERSION)
        except IntegrityError as exc:
            raise ChannelExists(values["name"]) from exc
        await self.versions.announce(self.VERSION)
        return StoredChannel(values, now, now)

    async def replace(self, name: str, fields: dict[str, Any]) -> StoredChannel | None:
        """Overwrite a stored channel's fields (its name stays); None when there is none."""
        values = _validated({**fields, "name": name})
        now = datetime.now(UTC)
        statement = update(ChannelRow).where(ChannelRow.name == name).values(**values, updated_at=now)
        async with self._engine.begin() as connection:
            if (await connection.execute(statement)).rowcount != 1:
                return None
            await self.versions.bump(connection, self.VERSION)
        await self.versions.announce(self.VERSION)
        return await self.get(name)

    async def delete(self, name: str) -> bool:
        async with self._engine.begin() as connection:
            result = await connection.execute(delete(ChannelRow).where(ChannelRow.name == name))
            if result.rowcount != 1:
                return False
            await self.versions.bump(connection, self.VERSION)
        await self.versions.announce(self.VERSION)
        return True


def _validated(fields: dict[str, Any]) -> dict[str, Any]:
    """Check ``fields`` as a `ChannelConfig`, but keep the api_key as given (no env resolution)."""
    config = ChannelConfig.model_validate(fields)
    dumped = config.model_dump()
    values = {name: dumped[name] for name in _FIELDS}
    values["api_key"] = str(fields.get("api_key") or "")
    return values


def _to_stored(row: dict[str, Any]) -> StoredChannel:
    return StoredChannel(
        fields={name: row[name] for name in _FIELDS},
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )
