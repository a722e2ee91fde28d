"""KeyStore's account fields on SQLite and PostgreSQL: groups, quotas through the ledger, limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from imagegate.billing.ledger import Ledger
from imagegate.db.groups import GroupStore
from imagegate.db.keys import MAX_QUOTA_USD, KeyStore, QuotaCeiling


async def money(engine: AsyncEngine, key_id: str) -> tuple[int | None, int]:
    ledger = Ledger(engine)
    return await ledger.balance(key_id), await ledger.total(key_id)


async def test_a_key_with_everything(engine: AsyncEngine) -> None:
    group = await GroupStore(engine).create(
        "team", price_multiplier="1.5", models=["demo", "gpt-image-1"], rpm=9
    )
    expires = datetime.now(UTC) + timedelta(days=1)
    store = KeyStore(engine)
    key, secret = await store.create(
        "ci",
        models=["demo", "gpt-image-2"],
        group="team",
        quota_usd=Decimal("2.5"),
        expires_at=expires,
        ip_allowlist=["10.1.2.3/8", "::1"],
    )
    assert key.group == group and key.price_multiplier == Decimal("1.5")
    assert key.quota_usd == Decimal("2.5") and key.balance_usd == Decimal("2.5")
    assert key.ip_allowlist == ["10.0.0.0/8", "::1/128"]
    assert key.allows_ip("10.9.9.9") and key.allows_ip("::1") and not key.allows_ip("192.168.0.1")
    assert not key.allows_ip(None) and not key.allows_ip("not-an-ip")
    assert key.effective_models() == ("demo",) and key.effective_rpm == 9
    assert key.allows_model("demo") and not key.allows_model("gpt-image-2")
    assert key.expires_at is not None and abs(key.expires_at - expires) < timedelta(seconds=1)
    assert not key.expired(datetime.now(UTC)) and key.expired(expires + timedelta(seconds=1))
    assert await store.authenticate(secret) == key
    assert await money(engine, key.id) == (2_500_000, 2_500_000)


async def test_quota_changes_are_ledger_grants(engine: AsyncEngine) -> None:
    store = KeyStore(engine)
    key, _ = await store.create("k", quota_usd="1")
    ledger = Ledger(engine)
    hold = await ledger.hold(key.id, "req_1", 300_000)
    await ledger.settle(hold, 300_000)  # spent 0.3

    topped = await store.update(key.id, add_quota_usd="0.5")
    assert topped is not None and topped.quota_usd == Decimal("1.5") and topped.balance_micros == 1_200_000
    lowered = await store.update(key.id, quota_usd="0.2")  # below what was spent: balance floors at 0
    assert lowered is not None and lowered.quota_micros == 200_000 and lowered.balance_micros == 0
    assert await money(engine, key.id) == (0, 0)

    unlimited = await store.update(key.id, quota_usd=None)
    assert unlimited is not None and unlimited.unlimited and unlimited.balance_usd is None
    with pytest.raises(ValueError):
        await store.update(key.id, add_quota_usd="1")
    limited = await store.update(key.id, quota_usd="3")
    assert limited is not None and limited.balance_micros == 3_000_000
    assert await money(engine, key.id) == (3_000_000, 3_000_000)
    grants = [entry.amount_micros for entry in await ledger.entries(key.id) if entry.kind == "grant"]
    assert grants == [1_000_000, 500_000, -1_200_000, 3_000_000]


async def test_update_plain_fields_and_group(engine: AsyncEngine) -> None:
    store = KeyStore(engine)
    group = await GroupStore(engine).create("g", rpm=5)
    key, secret = await store.create("k", rpm=1)
    updated = await store.update(
        key.id, name="renamed", enabled=False, rpm=None, models=["demo"], group=group.name, ip_allowlist=None
    )
    assert updated is not None and updated.name == "renamed" and not updated.enabled
    assert updated.group == group and updated.effective_rpm == 5 and updated.models == ["demo"]
    found = await store.authenticate(secret)  # disabled keys are found: the caller says why not
    assert found is not None and not found.enabled
    ungrouped = await store.update(key.id, group=None)
    assert ungrouped is not None and ungrouped.group is None
    assert await store.update("key_missing", enabled=True) is None


@pytest.mark.parametrize(
    "fields",
    [
        {"group": "no-such-group"},
        {"quota_usd": "-1"},
        {"quota_usd": "lots"},
        {"quota_usd": "1e30"},  # would overflow the 64-bit micro-USD columns
        {"quota_usd": "1e1000000"},
        {"quota_usd": "1000000000.000001"},
        {"ip_allowlist": ["300.1.1.1"]},
        {"ip_allowlist": []},
        {"expires_at": datetime(2030, 1, 1)},
        {"rpm": -5},
    ],
)
async def test_bad_key_fields_are_refused(engine: AsyncEngine, fields: dict[str, object]) -> None:
    store = KeyStore(engine)
    with pytest.raises(ValueError):
        await store.create("k", **fields)  # type: ignore[arg-type]
    key, _ = await store.create("ok")
    with pytest.raises(ValueError):
        await store.update(key.id, **fields)
    with pytest.raises(ValueError):
        await store.update(key.id, colour="blue")


async def test_a_top_up_cannot_lift_the_quota_past_its_ceiling(engine: AsyncEngine) -> None:
    store = KeyStore(engine)
    key, _ = await store.create("rich", quota_usd=MAX_QUOTA_USD - 1)
    with pytest.raises(QuotaCeiling):
        await store.update(key.id, add_quota_usd="1.000001")
    unchanged = await store.get(key.id)
    assert unchanged is not None and unchanged.quota_usd == unchanged.balance_usd == MAX_QUOTA_USD - 1
    topped = await store.update(key.id, add_quota_usd="1")
    assert topped is not None and topped.quota_usd == MAX_QUOTA_USD
