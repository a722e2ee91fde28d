"""/admin/channels: every channel with its live routing state, and the stored channels' CRUD.

``GET /admin/channels`` lists each channel (config file, database and demo) with its config,
its source and its live state (in-flight requests, breaker, failures, disabled reason, last
error and success); ``POST /admin/channels/{name}/test`` sends a tiny real request through one
(body ``{"model": "..."}`` optional; a success re-enables a channel the router disabled).
``POST /admin/channels`` and ``GET|PATCH|DELETE /admin/channels/{name}`` manage the channels
stored in the database. A write is checked as a whole catalog before it is stored, applies at
once on this process and, through the ``channels`` config version, on every other process
within about a second; an unchanged channel keeps its provider instance. Secrets are
write-only: responses carry ``api_key_hint`` only.

The bodies are :class:`~imagegate.settings.ChannelConfig`, the one channel schema.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

import orjson
from fastapi import Path, status
from pydantic import ConfigDict, Field, ValidationError, create_model, field_validator
from starlette.requests import Request
from starlette.responses import Response

from imagegate.api.admin.deps import admin_router, conflict, not_found
from imagegate.api.deps import gateway
from imagegate.db.channels import ChannelExists, StoredChannel, mask_secret
from imagegate.errors import GatewayError, InvalidRequest
from imagegate.providers.registry import DEMO_CHANNEL, provider_names
from imagegate.services.channel_check import check_channel
from imagegate.settings import ChannelConfig

if TYPE_CHECKING:
    from imagegate.services.gateway import Gateway

router = admin_router(tags=["channels"])


class ChannelCreate(ChannelConfig):
    """A channel as in the config file's ``[[channels]]`` (SPEC §7); ``api_key`` is write-only."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    models: list[str] = Field(min_length=1)

    @field_validator("api_key")
    @classmethod
    def _resolve_env_reference(cls, value: str) -> str:
        return value  # stored as given: an ``env:NAME`` is resolved when the catalog is built

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, value: str) -> str:
        if value not in provider_names():
            raise ValueError(f"unknown provider '{value}' (known: {', '.join(provider_names())})")
        return value


# PATCH: the same fields, each optional; the merged channel is validated as a ChannelCreate.
if TYPE_CHECKING:
    ChannelUpdate = ChannelCreate
else:
    ChannelUpdate = create_model(
        "ChannelUpdate",
        __config__=ConfigDict(extra="forbid"),
        __doc__="Fields to change; those left out keep their value.",
        **{
            name: (info.annotation | None, None)
            for name, info in ChannelCreate.model_fields.items()
            if name != "name"
        },
    )


class ChannelPublic(ChannelConfig):
    """A channel as shown: its config without the secret, where it comes from, when written."""

    api_key: str = Field(default="", exclude=True)
    api_key_hint: str
    #: ``database`` (managed here), ``config`` (the config file's) or ``builtin`` (demo): read-only.
    source: Literal["database", "config", "builtin"]
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @classmethod
    def from_stored(cls, stored: StoredChannel) -> ChannelPublic:
        return cls(
            **stored.fields,
            api_key_hint=stored.api_key_hint,
            source="database",
            created_at=stored.created_at,
            updated_at=stored.updated_at,
        )

    @classmethod
    def from_config(cls, config: ChannelConfig, source: Literal["config", "builtin"]) -> ChannelPublic:
        fields = config.model_dump(exclude={"api_key"})
        return cls(**fields, api_key_hint=mask_secret(config.api_key), source=source)


NameParam = Annotated[str, Path(description="the channel's name")]


@router.get("/channels")
async def list_channels(request: Request) -> Response:
    """Every channel, with its live routing state (in this process)."""
    gw = gateway(request)
    health = gw.routing.health
    shown = [ChannelPublic.from_config(config, _source(gw, config)) for config in gw.settings.channels]
    shown += [ChannelPublic.from_stored(stored) for stored in await gw.channels.list()]
    if gw.settings.demo:
        shown.append(ChannelPublic.from_config(DEMO_CHANNEL, "builtin"))
    data = [{**channel.model_dump(mode="json"), **health.snapshot(channel.name)} for channel in shown]
    return _json({"object": "list", "data": data})


@router.post("/channels/{name}/test")
async def test_channel(name: NameParam, request: Request) -> Response:
    model = _model_from(await request.body())
    result = await check_channel(gateway(request).routing, name, model)
    return _json(result.to_dict())


@router.post("/channels", status_code=status.HTTP_201_CREATED, response_model=ChannelPublic)
async def create_channel(request: Request, body: ChannelCreate) -> ChannelPublic:
    gw = gateway(request)
    if _read_only(gw, body.name):
        raise conflict(f"The config file already defines a channel '{body.name}'.", "channel_exists")
    fields = body.model_dump()
    await _check(gw, replace=body.name, with_fields=fields)
    try:
        stored = await gw.channels.create(fields)
    except ChannelExists as exc:
        raise conflict(f"A channel named '{body.name}' exists already.", "channel_exists") from exc
    await _apply(gw, undo=lambda: gw.channels.delete(body.name))
    return ChannelPublic.from_stored(stored)


@router.get("/channels/{name}", response_model=ChannelPublic)
async def get_channel(request: Request, name: NameParam) -> ChannelPublic:
    gw = gateway(request)
    stored = await gw.channels.get(name)
    if stored is not None:
        return ChannelPublic.from_stored(stored)
    for config in [*gw.settings.channels, DEMO_CHANNEL]:
        if config.name == name and (config is not DEMO_CHANNEL or gw.settings.demo):
            return ChannelPublic.from_config(config, _source(gw, config))
    raise not_found("channel", name)


@router.patch("/channels/{name}", response_model=ChannelPublic)
async def update_channel(request: Request, name: NameParam, body: ChannelUpdate) -> ChannelPublic:
    gw = gateway(request)
    old = await gw.channels.get(name)
    if old is None:
        raise _missing(gw, name)
    fields = {**old.fields, **body.model_dump(exclude_unset=True)}
    try:
        fields = ChannelCreate.model_validate(fields).model_dump()
    except ValidationError as exc:
        raise _invalid(exc) from exc
    await _check(gw, replace=name, with_fields=fields)
    stored = await gw.channels.replace(name, fields)
    if stored is None:
        raise not_found("channel", name)
    await _apply(gw, undo=lambda: gw.channels.replace(name, old.fields))
    return ChannelPublic.from_stored(stored)


@router.delete("/channels/{name}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_channel(request: Request, name: NameParam) -> Response:
    gw = gateway(request)
    old = await gw.channels.get(name)
    if old is None:
        raise _missing(gw, name)
    await _check(gw, replace=name, with_fields=None)
    if not await gw.channels.delete(name):
        raise not_found("channel", name)
    await _apply(gw, undo=lambda: gw.channels.create(old.fields))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


async def _check(gw: Gateway, *, replace: str, with_fields: dict[str, Any] | None) -> None:
    """Refuse (400, nothing stored) a change after which the channels make no catalog."""
    stored = [s.config() for s in await gw.channels.list() if s.name != replace]
    try:
        if with_fields is not None:
            stored.append(ChannelConfig.model_validate(with_fields))  # env references resolved
        gw.catalogs.check(stored)
    except (ValueError, ValidationError) as exc:
        raise InvalidRequest(f"The channel change was not applied: {exc}.", code="invalid_channel") from exc


async def _apply(gw: Gateway, undo: Callable[[], Awaitable[object]]) -> None:
    """Serve the change on this process now (the others follow the channels version).

    A change that passed the checks can still fail to start (a local model that does not load):
    then the row is put back as it was and the change is refused.
    """
    try:
        await gw.catalogs.reload()
    except (ValueError, ImportError) as exc:
        await undo()
        raise InvalidRequest(f"The channel change was not applied: {exc}.", code="invalid_channel") from exc


def _read_only(gw: Gateway, name: str) -> bool:
    return name == DEMO_CHANNEL.name or any(channel.name == name for channel in gw.settings.channels)


def _source(gw: Gateway, config: ChannelConfig) -> Literal["config", "builtin"]:
    return "builtin" if config is DEMO_CHANNEL else "config"


def _missing(gw: Gateway, name: str) -> GatewayError:
    if _read_only(gw, name):
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


def _model_from(body: bytes) -> str | None:
    if not body.strip():
        return None
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest('The body must be JSON, e.g. {"model": "gpt-image-1"}.') from exc
    model = data.get("model") if isinstance(data, dict) else None
    if model is not None and not isinstance(model, str):
        raise InvalidRequest("'model' must be a string.", param="model")
    return model


def _json(body: dict[str, Any]) -> Response:
    return Response(orjson.dumps(body), media_type="application/json")
