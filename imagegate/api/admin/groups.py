"""Token groups: ``/admin/groups`` CRUD. A group is named by its id or its name in paths."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import Path, status
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response

from imagegate.api.admin.deps import NotNull, admin_router, conflict, invalid, not_found
from imagegate.api.deps import gateway
from imagegate.db.groups import (
    MAX_MULTIPLIER,
    MULTIPLIER_PLACES,
    Group,
    GroupExists,
    GroupInUse,
    GroupStore,
)
from imagegate.domain import ResponseFormat

router = admin_router(tags=["groups"])

Multiplier = Annotated[
    Decimal,
    Field(
        ge=0,
        le=MAX_MULTIPLIER,
        decimal_places=MULTIPLIER_PLACES,
        description="prices of the group's keys are multiplied by this",
    ),
]


class GroupCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    price_multiplier: Multiplier = Decimal(1)
    #: Models the group's keys may use; null: every model.
    models: list[str] | None = None
    #: Default requests per minute for the group's keys; null: no limit.
    rpm: int | None = Field(default=None, ge=1)
    #: For the group's requests that do not say (unless the key has its own); null: the gateway's.
    response_format: ResponseFormat | None = None


class GroupUpdate(BaseModel):
    """Fields to change; those left out keep their value, an explicit null clears models or rpm."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str | None, NotNull] = Field(default=None, min_length=1, max_length=200)
    price_multiplier: Annotated[Multiplier | None, NotNull] = None
    models: list[str] | None = None
    rpm: int | None = Field(default=None, ge=1)
    response_format: ResponseFormat | None = None


class GroupPublic(BaseModel):
    object: Literal["group"] = "group"
    id: str
    name: str
    price_multiplier: str
    models: list[str] | None
    rpm: int | None
    created_at: datetime
    response_format: ResponseFormat | None = None

    @classmethod
    def from_domain(cls, group: Group) -> GroupPublic:
        return cls(
            id=group.id,
            name=group.name,
            price_multiplier=format(group.price_multiplier, "f"),
            models=group.models,
            rpm=group.rpm,
            created_at=group.created_at,
            response_format=group.response_format,
        )


class GroupList(BaseModel):
    object: Literal["list"] = "list"
    data: list[GroupPublic]


GroupRef = Annotated[str, Path(description="the group's id or name")]


def _store(request: Request) -> GroupStore:
    return GroupStore(gateway(request).engine)


async def find_group(store: GroupStore, ref: str) -> Group:
    group = await store.get(ref) or await store.get_by_name(ref)
    if group is None:
        raise not_found("group", ref)
    return group


@router.post("/groups", status_code=status.HTTP_201_CREATED, response_model=GroupPublic)
async def create_group(request: Request, body: GroupCreate) -> GroupPublic:
    try:
        group = await _store(request).create(
            body.name, body.price_multiplier, body.models, body.rpm, response_format=body.response_format
        )
    except GroupExists as exc:
        raise conflict(f"A group named '{body.name}' exists already.", "group_exists") from exc
    except ValueError as exc:
        raise invalid(exc) from exc
    return GroupPublic.from_domain(group)


@router.get("/groups", response_model=GroupList)
async def list_groups(request: Request) -> GroupList:
    return GroupList(data=[GroupPublic.from_domain(group) for group in await _store(request).list()])


@router.get("/groups/{group}", response_model=GroupPublic)
async def get_group(request: Request, group: GroupRef) -> GroupPublic:
    return GroupPublic.from_domain(await find_group(_store(request), group))


@router.patch("/groups/{group}", response_model=GroupPublic)
async def update_group(request: Request, group: GroupRef, body: GroupUpdate) -> GroupPublic:
    store = _store(request)
    found = await find_group(store, group)
    try:
        updated = await store.update(found.id, **body.model_dump(exclude_unset=True))
    except GroupExists as exc:
        raise conflict(f"A group named '{body.name}' exists already.", "group_exists") from exc
    except ValueError as exc:
        raise invalid(exc) from exc
    if updated is None:
        raise not_found("group", group)
    gateway(request).auth.forget()  # the group's keys may have new limits
    return GroupPublic.from_domain(updated)


@router.delete("/groups/{group}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_group(request: Request, group: GroupRef) -> Response:
    store = _store(request)
    found = await find_group(store, group)
    try:
        deleted = await store.delete(found.id)
    except GroupInUse as exc:
        raise conflict(
            f"The group '{found.name}' still has keys: move or revoke them first.", "group_in_use"
        ) from exc
    if not deleted:
        raise not_found("group", group)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
