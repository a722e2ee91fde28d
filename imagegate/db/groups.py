"""Token groups: keys in a group share a price multiplier, allowed models and a default rate limit.

groups = GroupStore(engine)
team = await groups.create("team-a", price_multiplier="0.8", models=["gpt-image-1"], rpm=60)
await groups.update(team.id, rpm=120)
key, secret = await KeyStore(engine).create("ci", group="team-a")
"""

from __future__ import annotations

import builtins
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Row, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from imagegate.db.tables import ApiKeyRow, GroupRow
from imagegate.domain import ResponseFormat
from imagegate.money import to_decimal

MAX_NAME_LENGTH = 200
MAX_MULTIPLIER = Decimal(1000)
# Costs are kept in whole micro-USD: finer multipliers change nothing but the stored text's length.
MULTIPLIER_PLACES = 6


@dataclass(frozen=True, slots=True)
class Group:
    id: str
    name: str
    price_multiplier: Decimal
    models: list[str] | None  # None: every model
    rpm: int | None  # None: no default limit for the group's keys
    created_at: datetime
    response_format: ResponseFormat | None = None  # None: the config's default

    def allows_model(self, model: str) -> bool:
        return self.models is None or model in self.models


class GroupExists(ValueError):
    """Another group already has this name."""


class GroupInUse(ValueError):
    """A group that still has keys cannot be deleted."""


class GroupStore:
    """Groups in the database behind ``engine``; the caller owns the engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def create(
        self,
        name: str,
        price_multiplier: Decimal | str | int = "1",
        models: builtins.list[str] | None = None,
        rpm: int | None = None,
        response_format: str | None = None,
    ) -> Group:
        group = Group(
            id="grp_" + secrets.token_hex(8),
            name=check_name(name),
            price_multiplier=check_multiplier(price_multiplier),
            models=normalize_models(models),
            rpm=check_rpm(rpm),
            created_at=datetime.now(UTC),
            response_format=check_response_format(response_format),
        )
        values = {**_row_values(group), "id": group.id, "created_at": group.created_at}
        try:
            async with self._engine.begin() as connection:
                await connection.execute(insert(GroupRow).values(**values))
        except IntegrityError as exc:
            raise GroupExists(f"a group named '{group.name}' already exists") from exc
        return group

    async def get(self, group_id: str) -> Group | None:
        async with self._engine.connect() as connection:
            row = (await connection.execute(select(*_COLUMNS).where(GroupRow.id == group_id))).first()
        return None if row is None else _to_domain(row)

    async def get_by_name(self, name: str) -> Group | None:
        async with self._engine.connect() as connection:
            row = (await connection.execute(select(*_COLUMNS).where(GroupRow.name == name))).first()
        return None if row is None else _to_domain(row)

    async def list(self) -> builtins.list[Group]:
        """Every group, oldest first."""
        query = select(*_COLUMNS).order_by(GroupRow.created_at, GroupRow.id)
        async with self._engine.connect() as connection:
            return [_to_domain(row) for row in (await connection.execute(query)).all()]

    async def update(self, group_id: str, **fields: Any) -> Group | None:
        """Change ``name``, ``price_multiplier``, ``models``, ``rpm`` or ``response_format``; None when
        there is no such group.

        Passing ``models=None`` or ``rpm=None`` clears the restriction, ``response_format=None`` the default.
        """
        unknown = set(fields) - {"name", "price_multiplier", "models", "rpm", "response_format"}
        if unknown:
            raise ValueError(f"unknown group fields: {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {}
        if "name" in fields:
            values["name"] = check_name(fields["name"])
        if "price_multiplier" in fields:
            values["price_multiplier"] = str(check_multiplier(fields["price_multiplier"]))
        if "models" in fields:
            values["models"] = normalize_models(fields["models"])
        if "rpm" in fields:
            values["rpm"] = check_rpm(fields["rpm"])
        if "response_format" in fields:
            values["response_format"] = check_response_format(fields["response_format"])
        if values:
            try:
                async with self._engine.begin() as connection:
                    await connection.execute(update(GroupRow).where(GroupRow.id == group_id).values(**values))
            except IntegrityError as exc:
                raise GroupExists(f"a group named '{values.get('name')}' already exists") from exc
        return await self.get(group_id)

    async def delete(self, group_id: str) -> bool:
        """Delete an empty group; False when there is none, GroupInUse while keys belong to it."""
        async with self._engine.begin() as connection:
            in_use = await connection.execute(
                select(func.count()).select_from(ApiKeyRow).where(ApiKeyRow.group_id == group_id)
            )
            if in_use.scalar_one():
                raise GroupInUse("the group still has keys: move or revoke them first")
            result = await connection.execute(delete(GroupRow).where(GroupRow.id == group_id))
        return result.rowcount == 1


async def resolve_group_id(connection: AsyncConnection, group: str) -> str:
    """The id of the group named or identified by ``group``; ValueError when there is none."""
    query = select(GroupRow.id).where(or_(GroupRow.id == group, GroupRow.name == group))
    found = (await connection.execute(query)).scalars().first()
    if found is None:
        raise ValueError(f"no group named '{group}'")
    return str(found)


def check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"a name needs 1 to {MAX_NAME_LENGTH} characters")
    return name


def check_multiplier(value: Decimal | str | int) -> Decimal:
    number = to_decimal(value)
    if not Decimal(0) <= number <= MAX_MULTIPLIER:
        raise ValueError(f"price_multiplier must be between 0 and {MAX_MULTIPLIER}")
    if number != number.quantize(Decimal(1).scaleb(-MULTIPLIER_PLACES)):
        raise ValueError(f"price_multiplier takes at most {MULTIPLIER_PLACES} decimal places")
    # "0.80" and "0.8" are the same multiplier; "f" keeps 100 from becoming "1E+2".
    return Decimal(format(number.normalize(), "f"))


def check_rpm(rpm: int | None) -> int | None:
    if rpm is None:
        return None
    if isinstance(rpm, bool) or not isinstance(rpm, int) or rpm < 1:
        raise ValueError("rpm must be a positive integer, or None for no limit")
    return rpm


def check_response_format(value: str | None) -> ResponseFormat | None:
    """A default response format: ``url``, ``b64_json``, or None for "not set here"."""
    if value is None:
        return None
    known = _RESPONSE_FORMATS.get(value)
    if known is None:
        raise ValueError("response_format must be 'url' or 'b64_json', or None for the default")
    return known


_RESPONSE_FORMATS: dict[str, ResponseFormat] = {"url": "url", "b64_json": "b64_json"}


def normalize_models(models: builtins.list[str] | None) -> builtins.list[str] | None:
    if models is None:
        return None
    cleaned = list(dict.fromkeys(name.strip() for name in models if name.strip()))
    if not cleaned:
        # An empty allow-list would allow nothing; None is how to say "all".
        raise ValueError("models must name at least one model, or be None for every model")
    return cleaned


_COLUMNS = (
    GroupRow.id,
    GroupRow.name,
    GroupRow.price_multiplier,
    GroupRow.models,
    GroupRow.rpm,
    GroupRow.created_at,
    GroupRow.response_format,
)


def _row_values(group: Group) -> dict[str, Any]:
    return {
        "name": group.name,
        "price_multiplier": str(group.price_multiplier),
        "models": group.models,
        "rpm": group.rpm,
        "response_format": group.response_format,
    }


def _to_domain(row: Row[str, str, str, list[str] | None, int | None, datetime, str | None]) -> Group:
    group_id, name, multiplier, models, rpm, created_at, response_format = row
    return Group(
        id=group_id,
        name=name,
        price_multiplier=Decimal(multiplier),
        models=None if models is None else list(models),
        rpm=rpm,
        created_at=created_at,
        response_format=check_response_format(response_format),
    )
