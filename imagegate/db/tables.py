"""Database tables: the storage shape, kept apart from domain objects and wire models.

Later features add their tables here, on the same `metadata`, each with a hand-written
migration in ``migrations/versions``. ``tests/db/test_migrations.py`` fails when the two drift.

    class LedgerRow(Base):
        __tablename__ = "ledger"
        id: Mapped[int] = mapped_column(primary_key=True)
        key_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id"))
        created_at: Mapped[datetime] = mapped_column(UtcDateTime)
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    false,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# Fixed constraint names, so migrations can name what they create and later drop or alter it
# identically on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python, whatever the backend.

    PostgreSQL keeps the offset (``timestamptz``); SQLite has no timezone support, so values are
    stored as naive UTC there and given their UTC tzinfo back when read.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            # A naive time would be stored as if it were UTC, silently shifting local times.
            raise ValueError("UtcDateTime needs a timezone-aware datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = metadata
    type_annotation_map: dict[Any, Any] = {datetime: UtcDateTime}


# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
BigIntId = BigInteger().with_variant(Integer(), "sqlite")


class GroupRow(Base):
    """A token group: keys in it share a price multiplier, allowed models and a default rate limit."""

    __tablename__ = "groups"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    # A decimal string ("1", "0.8"): exact, and no Numeric-on-SQLite float round trips.
    price_multiplier: Mapped[str] = mapped_column(String(32), server_default="1")
    models: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    rpm: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # "url" or "b64_json": what the group's keys get when a request does not say (None: config's).
    response_format: Mapped[str | None] = mapped_column(String(16), nullable=True)


class ApiKeyRow(Base):
    """A client key. Only the SHA-256 of the secret is kept; the secret is shown once."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    # The first characters of the secret, so people can tell their keys apart in listings.
    key_prefix: Mapped[str] = mapped_column(String(16))
    # None means every model; a list restricts the key to those public model names. none_as_null
    # stores SQL NULL rather than JSON 'null', so "all models" is queryable as IS NULL.
    models: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    group_id: Mapped[str | None] = mapped_column(ForeignKey("groups.id"), nullable=True, index=True)
    # Money is integer micro-USD. quota_micros is everything ever granted (None: unlimited);
    # balance_micros is what is left, always equal to the sum of the key's ledger rows.
    quota_micros: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    balance_micros: Mapped[int] = mapped_column(BigInteger, server_default="0")
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    rpm: Mapped[int | None] = mapped_column(Integer, nullable=True)
    ip_allowlist: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    enabled: Mapped[bool] = mapped_column(Boolean, server_default=true())
    # The key's default response format (None: its group's, else config's).
    response_format: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # An admin key may use the admin API and the console's admin pages (besides /v1).
    admin: Mapped[bool] = mapped_column(Boolean, server_default=false())

    __table_args__ = (CheckConstraint("balance_micros >= 0", name="balance_not_negative"),)


class LedgerRow(Base):
    """One movement of a key's money: grant (+), hold (-max), release (+held), charge (-actual)."""

    __tablename__ = "ledger"

    # One row of each kind per request: a retried or ambiguous commit of a settle can never
    # apply twice. Grants have no request id (NULLs are distinct in a unique index).
    __table_args__ = (Index("uq_ledger_request_id_kind", "request_id", "kind", unique=True),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    key_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id"), index=True)
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    kind: Mapped[str] = mapped_column(String(16))
    amount_micros: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class OpenHoldRow(Base):
    """A hold not yet settled or released, with the process that owns it.

    Whoever deletes the row (the owner's settle or release, or the stale-hold reaper when the
    owner's lease ran out) applies the money move, in the same transaction: exactly once. The
    request's model and endpoint are kept so a reaped hold can still get its request-log row.
    """

    __tablename__ = "ledger_holds"

    # No secondary indexes: the table holds only requests in flight, and every hold and settle
    # would pay to maintain them; the reaper's scans of it are small.
    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id"))
    amount_micros: Mapped[int] = mapped_column(BigInteger)
    # None: taken before holds had owners; released by the first reaper.
    owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    endpoint: Mapped[str | None] = mapped_column(String(300), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class LeaseRow(Base):
    """A live process that owns holds: it pushes ``expires_at`` forward while it runs."""

    __tablename__ = "ledger_leases"

    owner: Mapped[str] = mapped_column(String(64), primary_key=True)
    host: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ModelPriceRow(Base):
    """An operator's price for a model, set through the admin API; beats the config file."""

    __tablename__ = "model_prices"

    model: Mapped[str] = mapped_column(String(200), primary_key=True)
    price: Mapped[dict[str, object]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ConsoleSessionRow(Base):
    """A signed-in console browser. The cookie holds a random token; only its SHA-256 is kept here."""

    __tablename__ = "console_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # A key's id, or "admin" for the IMAGEGATE_ADMIN_KEY principal.
    key_id: Mapped[str] = mapped_column(String(64))
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


class RequestDetailRow(Base):
    """What a request asked for and got, beside its request-log row: the gallery and detail view.

    ``params`` holds size, quality, n, seed, background, output format…; ``inputs`` and ``outputs``
    are lists of ``{"url": …, "role": "image" | "mask"}`` / ``{"url": …, "revised_prompt": …}``.
    """

    __tablename__ = "request_details"

    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    time: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    prompt: Mapped[str | None] = mapped_column(Text, nullable=True)
    params: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    inputs: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    outputs: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON(none_as_null=True), nullable=True)


class RequestLogDayRow(Base):
    """The request log summed per UTC day × key × model × channel, for finished days.

    Charts and usage read these few thousand rows instead of summing a million log rows; the
    day in progress is summed live. Empty strings stand for "none" so the key stays simple.
    """

    __tablename__ = "request_log_days"
    # The all-keys summaries (key "*") and one key's rows are each a range of this index.
    __table_args__ = (Index("ix_request_log_days_key_id_day", "key_id", "day"),)

    day: Mapped[str] = mapped_column(String(10), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    model: Mapped[str] = mapped_column(String(200), primary_key=True)
    channel: Mapped[str] = mapped_column(String(200), primary_key=True)
    requests: Mapped[int] = mapped_column(BigInteger)
    errors: Mapped[int] = mapped_column(BigInteger)
    images: Mapped[int] = mapped_column(BigInteger)
    input_tokens: Mapped[int] = mapped_column(BigInteger)
    output_tokens: Mapped[int] = mapped_column(BigInteger)
    cost_micros: Mapped[int] = mapped_column(BigInteger)
    latency_ms_sum: Mapped[float] = mapped_column(Float)


class RequestLogDayDoneRow(Base):
    """The days already summed into ``request_log_days`` (a day with no requests is done too)."""

    __tablename__ = "request_log_days_done"

    day: Mapped[str] = mapped_column(String(10), primary_key=True)
