"""GroupStore on SQLite and PostgreSQL."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from imagegate.db.groups import GroupExists, GroupInUse, GroupStore
from imagegate.db.keys import KeyStore


async def test_create_get_list_update_delete(engine: AsyncEngine) -> None:
    groups = GroupStore(engine)
    team = await groups.create(" team ", price_multiplier="0.80", models=["demo", " demo"], rpm=30)
    assert team.id.startswith("grp_") and team.name == "team"
    assert team.price_multiplier == Decimal("0.8") and team.models == ["demo"] and team.rpm == 30
    assert await groups.get(team.id) == team == await groups.get_by_name("team")
    other = await groups.create("other", price_multiplier=100)
    assert str(other.price_multiplier) == "100"
    assert [group.name for group in await groups.list()] == ["team", "other"]

    changed = await groups.update(team.id, models=None, rpm=None, price_multiplier="2")
    assert changed is not None and changed.models is None and changed.rpm is None
    assert changed.price_multiplier == 2 and changed.allows_model("anything")
    assert await groups.update("grp_missing", rpm=1) is None

    assert await groups.delete(other.id)
    assert not await groups.delete(other.id)


async def test_names_are_unique(engine: AsyncEngine) -> None:
    groups = GroupStore(engine)
    first = await groups.create("a")
    await groups.create("b")
    with pytest.raises(GroupExists):
        await groups.create("a")
    with pytest.raises(GroupExists):
        await groups.update(first.id, name="b")


async def test_a_group_with_keys_cannot_be_deleted(engine: AsyncEngine) -> None:
    group = await GroupStore(engine).create("busy")
    await KeyStore(engine).create("member", group=group.id)
    with pytest.raises(GroupInUse):
        await GroupStore(engine).delete(group.id)


@pytest.mark.parametrize(
    "fields",
    [
        {"name": ""},
        {"name": "x", "price_multiplier": "-1"},
        {"name": "x", "price_multiplier": "abc"},
        {"name": "x", "price_multiplier": "NaN"},
        {"name": "x", "price_multiplier": "1e30"},
        {"name": "x", "price_multiplier": "1e-40"},  # longer than the stored text's 32 characters
        {"name": "x", "price_multiplier": "0.1234567"},
        {"name": "x", "rpm": 0},
        {"name": "x", "models": [" "]},
    ],
)
async def test_bad_values_are_refused(engine: AsyncEngine, fields: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        await GroupStore(engine).create(**fields)  # type: ignore[arg-type]
