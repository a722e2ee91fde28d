"""Channels stored in the database: ``POST /admin/channels``, ``GET|PATCH|DELETE /admin/channels/{name}``.

Each write rebuilds the catalog at once (`Gateway.reload_catalog`), so a new channel serves its
models on the next request and a deleted one stops. The listing with live routing state is
``GET /admin/channels`` (``imagegate.api.admin_channels``). Secrets are write-only: responses
carry ``api_key_hint`` only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Path, status
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from imagegate.api.admin.deps import admin_router, conflict, not_found
from imagegate.api.deps import gateway
from imagegate.db.channels import ChannelExists, StoredChannel, mask_secret
from imagegate.errors import GatewayError, InvalidRequest
from imagegate.settings import ProviderName

router = admin_router(tags=["channels"])

ChannelName = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
# Bounds far past any real setting and inside the database's 32-bit integer columns, so a typo is a
# 400 naming the field instead of an overflow in the database (or in the event loop's timer).
Priority = Annotated[int, Field(ge=-1_000_000, le=1_000_000)]
Weight = Annotated[int, Field(ge=1, le=1_000_000)]
TimeoutS = Annotated[float, Field(gt=0, le=86_400)]
MaxConcurrency = Annotated[int, Field(ge=1, le=1_000_000)]


class ChannelUpdate(BaseModel):
    """Fields to change; those left out keep their value."""

    model_config = ConfigDict(extra="forbid")

    provider: ProviderName | None = None
    base_url: str | None = None
    #: A literal secret or ``env:NAME``; write-only.
    api_key: str | None = None
    models: list[str] | None = None
    model_map: dict[str, str] | None = None
    priority: Priority | None = None
    weight: Weight | None = None
    timeout_s: TimeoutS | None = None
    max_concurrency: MaxConcurrency | None = None
    options: dict[str, Any] | None = None


class ChannelCreate(BaseModel):
    """A channel as in the config file's ``[[channels]]`` (SPEC §7)."""

    model_config = ConfigDict(extra="forbid")

    name: ChannelName
    provider: ProviderName
    base_url: str = ""
    api_key: str = ""
    models: list[str] = Field(min_length=1)
    model_map: dict[str, str] = Field(default_factory=dict)
    priority: Priority = 0
    weight: Weight = 1
    timeout_s: TimeoutS = 300.0
    max_concurrency: MaxConcurrency | None = None
    options: dict[str, Any] = Field(default_factory=dict)


class ChannelPublic(BaseModel):
    name: str
    provider: str
    base_url: str
    api_key_hint: str
    models: list[str]
    model_map: dict[str, str]
    priority: int
    weight: int
    timeout_s: float
    max_concurrency: int | None
    options: dict[str, Any]
    #: ``database`` (managed here) or ``config`` (the config file's; read-only here).
    source: Literal["database", "config"]
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @classmethod
    def from_stored(cls, stored: StoredChannel) -> ChannelPublic:
        fields = {k: v for k, v in stored.fields.items() if k != "api_key"}
        return cls(
            **fields,
            api_key_hint=stored.api_key_hint,
            source="database",
            created_at=stored.created_at,
            updated_at=stored.updated_at,
        )


NameParam = Annotated[str, Path(description="the channel's name")]


@router.post("/channels", status_code=status.HTTP_201_CREATED, response_model=ChannelPublic)
async def create_channel(request: Request, body: ChannelCreate) -> ChannelPublic:
    gw = gateway(request)
    if any(channel.name == body.name for channel in gw.settings.channels) or body.name == "demo":
        raise conflict(f"The config file already defines a channel '{body.name}'.", "channel_exists")
    try:
        stored = await gw.channels.create(body.model_dump())
    except ChannelExists as exc:
        raise conflict(f"A channel named '{body.name}' exists already.", "channel_exists") from exc
    except ValidationError as exc:
        raise _invalid(exc) from exc
    await _reload_or_undo(request, undo=lambda: gw.channels.delete(body.name))
    return ChannelPublic.from_stored(stored)


@router.get("/channels/{name}", response_model=ChannelPublic)
async def get_channel(request: Request, name: NameParam) -> ChannelPublic:
    gw = gateway(request)
    stored = await gw.channels.get(name)
    if stored is not None:
        return ChannelPublic.from_stored(stored)
    for config in gw.settings.channels:
        if config.name == name:
            fields = config.model_dump(exclude={"api_key"})
            return ChannelPublic(**fields, api_key_hint=mask_secret(config.api_key), source="config")
    raise not_found("channel", name)


@router.patch("/channels/{name}", response_model=ChannelPublic)
async def update_channel(request: Request, name: NameParam, body: ChannelUpdate) -> ChannelPublic:
    gw = gateway(request)
    old = await gw.channels.get(name)
    if old is None:
        raise _missing(request, name)
    fields = {**old.fields, **body.model_dump(exclude_unset=True)}
    try:
        stored = await gw.channels.replace(name, fields)
    except ValidationError as exc:
        raise _invalid(exc) from exc
    if stored is None:
        raise not_found("channel", name)
    await _reload_or_undo(request, undo=lambda: gw.channels.replace(name, old.fields))
    return ChannelPublic.from_stored(stored)


@router.delete("/channels/{name}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_channel(request: Request, name: NameParam) -> Response:
    gw = gateway(request)
    old = await gw.channels.get(name)
    if old is None or not await gw.channels.delete(name):
        raise _missing(request, name)
    await _reload_or_undo(request, undo=lambda: gw.channels.create(old.fields))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


async def _reload_or_undo(request: Request, undo: Callable[[], Awaitable[object]]) -> None:
    """Swap in the new catalog; when the channels no longer make one, put the row back and 400."""
    try:
        await gateway(request).reload_catalog()
    except (ValueError, ImportError) as exc:
        await undo()
        raise InvalidRequest(f"The channel change was not applied: {exc}.", code="invalid_channel") from exc


def _missing(request: Request, name: str) -> GatewayError:
    if any(channel.name == name for channel in gateway(request).settings.channels):
        return InvalidRequest(
            f"The channel '{name}' comes from the config file; change it there.",
            code="channel_read_only",
            status=409,
        )
    return not_found("channel", name)


def _invalid(error: ValidationError) -> InvalidRequest:
    first = error.errors()[0]
    param = ".".join(str(part) for part in first.get("loc", ())) or None
    return InvalidRequest(f"Invalid channel: {first.get('msg', 'invalid')}.", param=param)
