"""The `ApiKey` value and the checks on a key's fields, apart from the store that persists them."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from sqlalchemy import Row

from imagegate.db.groups import Group, check_response_format
from imagegate.domain import ResponseFormat
from imagegate.money import from_micros

MAX_ALLOWLIST_ENTRIES = 100

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A client key as the rest of the gateway sees it: never the secret, never the hash."""

    id: str
    name: str
    prefix: str
    models: list[str] | None
    created_at: datetime
    revoked_at: datetime | None
    group: Group | None = None
    #: Everything ever granted, in micro-USD; None: unlimited.
    quota_micros: int | None = None
    #: What is left of the quota, in micro-USD (the sum of the key's ledger).
    balance_micros: int = 0
    expires_at: datetime | None = None
    rpm: int | None = None
    ip_allowlist: list[str] | None = None
    enabled: bool = True
    #: The default response format of the key's requests (None: its group's, else config's).
    response_format: ResponseFormat | None = None
    #: May use the admin API and the console's admin pages.
    admin: bool = False

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    @property
    def unlimited(self) -> bool:
        return self.quota_micros is None

    @property
    def quota_usd(self) -> Decimal | None:
        return None if self.quota_micros is None else from_micros(self.quota_micros)

    @property
    def balance_usd(self) -> Decimal | None:
        """What the key may still spend; None for an unlimited key."""
        return None if self.quota_micros is None else from_micros(self.balance_micros)

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    def allows_model(self, model: str) -> bool:
        """Whether this key (and its group) may use the public model name ``model``."""
        own = self.models is None or model in self.models
        return own and (self.group is None or self.group.allows_model(model))

    def effective_models(self) -> tuple[str, ...] | None:
        """The models both the key and its group allow (None: every model)."""
        group = self.group.models if self.group is not None else None
        if self.models is None and group is None:
            return None
        if self.models is None or group is None:
            return tuple(self.models if self.models is not None else group or ())
        return tuple(model for model in self.models if model in group)

    @property
    def effective_rpm(self) -> int | None:
        """The key's own limit, else its group's, else none."""
        if self.rpm is not None:
            return self.rpm
        return self.group.rpm if self.group is not None else None

    @property
    def effective_response_format(self) -> ResponseFormat | None:
        """The key's own default, else its group's, else None (the config's applies)."""
        if self.response_format is not None:
            return self.response_format
        return self.group.response_format if self.group is not None else None

    @property
    def price_multiplier(self) -> Decimal:
        return self.group.price_multiplier if self.group is not None else Decimal(1)

    def allows_ip(self, address: str | None) -> bool:
        if self.ip_allowlist is None:
            return True
        if not address:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in _networks(tuple(self.ip_allowlist)))


@lru_cache(maxsize=1024)
def _networks(entries: tuple[str, ...]) -> list[IpNetwork]:
    return [ipaddress.ip_network(entry, strict=False) for entry in entries]


def normalize_allowlist(entries: list[str] | None) -> list[str] | None:
    """IPs and CIDR ranges in canonical form; ValueError for anything that is neither."""
    if entries is None:
        return None
    cleaned: list[str] = []
    for entry in entries:
        text = entry.strip()
        if not text:
            continue
        try:
            network = ipaddress.ip_network(text, strict=False)
        except ValueError as exc:
            raise ValueError(f"not an IP address or CIDR range: {entry!r}") from exc
        cleaned.append(str(network))
    cleaned = list(dict.fromkeys(cleaned))
    if not cleaned or len(cleaned) > MAX_ALLOWLIST_ENTRIES:
        # An empty allowlist would lock the key out for good; None is how to say "anywhere".
        raise ValueError(f"ip_allowlist needs 1 to {MAX_ALLOWLIST_ENTRIES} entries, or None for any IP")
    return cleaned


def check_expiry(expires_at: datetime | None) -> datetime | None:
    if expires_at is not None and expires_at.tzinfo is None:
        raise ValueError("expires_at needs a timezone (e.g. UTC)")
    return expires_at


def to_domain(row: Row[*tuple[Any, ...]]) -> ApiKey:
    """An `ApiKey` from a row of ``keys._select()`` (the key's columns, then its group's)."""
    group = None
    if row.group_id is not None:
        group = Group(
            id=row.group_id,
            name=row.group_name,
            price_multiplier=Decimal(row.group_price_multiplier),
            models=None if row.group_models is None else list(row.group_models),
            rpm=row.group_rpm,
            created_at=row.group_created_at,
            response_format=check_response_format(row.group_response_format),
        )
    return ApiKey(
        id=row.id,
        name=row.name,
        prefix=row.key_prefix,
        models=None if row.models is None else list(row.models),
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        group=group,
        quota_micros=row.quota_micros,
        balance_micros=int(row.balance_micros),
        expires_at=row.expires_at,
        rpm=row.rpm,
        ip_allowlist=None if row.ip_allowlist is None else list(row.ip_allowlist),
        enabled=bool(row.enabled),
        response_format=check_response_format(row.response_format),
        admin=bool(row.admin),
    )
