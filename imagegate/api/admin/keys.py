"""Client keys: ``/admin/keys`` CRUD. The secret is in the create response and nowhere else, ever.

``PATCH`` changes limits (enabled, models, rpm, expiry, IP allowlist, group), the default
``response_format`` and money:
``quota_usd`` sets the total quota, ``add_quota_usd`` tops a key up; both are ledger grants.
``DELETE`` revokes for good (the row stays, so its logs and ledger keep their key).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import Path, status
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from starlette.requests import Request

from imagegate.api.admin.deps import NotNull, admin_router, invalid, not_found
from imagegate.api.deps import gateway
from imagegate.db.key_values import ApiKey
from imagegate.db.keys import MAX_QUOTA_USD, KeyStore, QuotaCeiling
from imagegate.domain import ResponseFormat
from imagegate.money import format_usd
from imagegate.services.tasks_webhooks import check_webhook_url, new_secret

router = admin_router(tags=["keys"])

# Bounded here so a typo like "1e30" is a 400 naming the field, not an overflow in the database.
Usd = Annotated[Decimal, Field(ge=0, le=MAX_QUOTA_USD, description='US dollars, e.g. "25.00"')]


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    #: The group's name or id.
    group: str | None = None
    #: null: unlimited.
    quota_usd: Usd | None = None
    #: Models the key may use (inside its group's); null: every model.
    models: list[str] | None = None
    rpm: int | None = Field(default=None, ge=1)
    expires_at: AwareDatetime | None = None
    #: IPs or CIDR ranges the key may be used from; null: anywhere.
    ip_allowlist: list[str] | None = None
    #: For requests that do not say; null: the group's default, else the gateway's.
    response_format: ResponseFormat | None = None
    #: An admin key may use this admin API and the console's admin pages.
    admin: bool = False


class KeyUpdate(BaseModel):
    """Fields to change; those left out keep their value, an explicit null clears a restriction."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str | None, NotNull] = Field(default=None, min_length=1, max_length=200)
    enabled: Annotated[bool | None, NotNull] = None
    group: str | None = None
    #: The new total quota (the balance moves by the difference); null: unlimited.
    quota_usd: Usd | None = None
    #: Added to a limited key's quota and balance.
    add_quota_usd: Annotated[Decimal, Field(gt=0, le=MAX_QUOTA_USD)] | None = None
    models: list[str] | None = None
    rpm: int | None = Field(default=None, ge=1)
    expires_at: AwareDatetime | None = None
    ip_allowlist: list[str] | None = None
    response_format: ResponseFormat | None = None
    #: Where the key's async tasks are reported when they end (SPEC §10); null: nowhere.
    webhook_url: str | None = None
    admin: bool | None = None


class KeyPublic(BaseModel):
    object: Literal["api_key"] = "api_key"
    id: str
    name: str
    #: The secret's first characters, to tell keys apart.
    prefix: str
    group: str | None
    group_id: str | None
    models: list[str] | None
    quota_usd: str | None
    balance_usd: str | None
    rpm: int | None
    expires_at: datetime | None
    ip_allowlist: list[str] | None
    enabled: bool
    admin: bool
    active: bool
    created_at: datetime
    revoked_at: datetime | None
    response_format: ResponseFormat | None = None

    @classmethod
    def from_domain(cls, key: ApiKey) -> KeyPublic:
        limited = key.quota_micros is not None
        return cls(
            id=key.id,
            name=key.name,
            prefix=key.prefix,
            group=key.group.name if key.group else None,
            group_id=key.group.id if key.group else None,
            models=key.models,
            quota_usd=format_usd(key.quota_micros) if key.quota_micros is not None else None,
            balance_usd=format_usd(key.balance_micros) if limited else None,
            rpm=key.rpm,
            expires_at=key.expires_at,
            ip_allowlist=key.ip_allowlist,
            enabled=key.enabled,
            admin=key.admin,
            active=key.active,
            created_at=key.created_at,
            revoked_at=key.revoked_at,
            response_format=key.response_format,
        )


class KeyCreated(KeyPublic):
    #: The full key. Shown in this response only: it is stored as a hash.
    key: str


class KeyList(BaseModel):
    object: Literal["list"] = "list"
    data: list[KeyPublic]


KeyId = Annotated[str, Path(description="the key's id (key_…)")]


def _store(request: Request) -> KeyStore:
    return KeyStore(gateway(request).engine)


@router.post("/keys", status_code=status.HTTP_201_CREATED, response_model=KeyCreated)
async def create_key(request: Request, body: KeyCreate) -> KeyCreated:
    try:
        key, secret = await _store(request).create(
            body.name,
            body.models,
            group=body.group,
            quota_usd=body.quota_usd,
            rpm=body.rpm,
            expires_at=body.expires_at,
            ip_allowlist=body.ip_allowlist,
            response_format=body.response_format,
            admin=body.admin,
        )
    except ValueError as exc:
        raise invalid(exc) from exc
    return KeyCreated(**KeyPublic.from_domain(key).model_dump(), key=secret)


@router.get("/keys", response_model=KeyList)
async def list_keys(request: Request) -> KeyList:
    return KeyList(data=[KeyPublic.from_domain(key) for key in await _store(request).list()])


@router.get("/keys/{key_id}", response_model=KeyPublic)
async def get_key(request: Request, key_id: KeyId) -> KeyPublic:
    key = await _store(request).get(key_id)
    if key is None:
        raise not_found("key", key_id)
    return KeyPublic.from_domain(key)


@router.patch("/keys/{key_id}", response_model=KeyPublic)
async def update_key(request: Request, key_id: KeyId, body: KeyUpdate) -> KeyPublic:
    fields = body.model_dump(exclude_unset=True)
    webhook = {"url": fields.pop("webhook_url")} if "webhook_url" in fields else None
    if webhook is not None and webhook["url"] is not None:
        check_webhook_url(webhook["url"])
    try:
        key = await _store(request).update(key_id, **fields)
    except QuotaCeiling as exc:
        raise invalid(exc, param="add_quota_usd") from exc  # only the store knows the current quota
    except ValueError as exc:
        raise invalid(exc) from exc
    if key is None:
        raise not_found("key", key_id)
    if webhook is not None:
        await gateway(request).tasks.store.set_key_webhook(key_id, **webhook)
    gateway(request).auth.forget()  # new limits apply at once in this process
    return KeyPublic.from_domain(key)


class WebhookSecret(BaseModel):
    object: Literal["webhook_secret"] = "webhook_secret"
    key_id: str
    #: ``whsec_…``: verify task webhooks with it (Standard Webhooks). Replaces the previous one.
    secret: str


@router.post("/keys/{key_id}/webhook-secret", response_model=WebhookSecret)
async def rotate_webhook_secret(request: Request, key_id: KeyId) -> WebhookSecret:
    if await _store(request).get(key_id) is None:
        raise not_found("key", key_id)
    secret = new_secret()
    await gateway(request).tasks.store.set_key_webhook(key_id, secret=secret)
    return WebhookSecret(key_id=key_id, secret=secret)


@router.delete("/keys/{key_id}", response_model=KeyPublic)
async def revoke_key(request: Request, key_id: KeyId) -> KeyPublic:
    store = _store(request)
    if not await store.revoke(key_id):
        key = await store.get(key_id)
        if key is None:
            raise not_found("key", key_id)
        return KeyPublic.from_domain(key)  # already revoked: revoking is idempotent
    gateway(request).auth.forget()
    revoked = await store.get(key_id)
    assert revoked is not None
    return KeyPublic.from_domain(revoked)
