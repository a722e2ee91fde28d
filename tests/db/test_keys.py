"""KeyStore on SQLite and PostgreSQL: the lifecycle of a key as a client and an admin see it."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from imagegate.db import migrate
from imagegate.db.engine import ping
from imagegate.db.keys import ApiKey, KeyStore, hash_key
from imagegate.db.tables import ApiKeyRow


def test_migrating_to_head_twice_is_a_no_op(database_url: str) -> None:
    migrate.upgrade(database_url)
    assert migrate.current_revision(database_url) == migrate.head_revision()
    migrate.upgrade(database_url)
    assert migrate.current_revision(database_url) == migrate.head_revision()


async def test_ping(engine: AsyncEngine) -> None:
    await ping(engine)


async def test_create_then_authenticate(engine: AsyncEngine) -> None:
    store = KeyStore(engine)
    before = datetime.now(UTC)
    key, secret = await store.create("alice", models=["gpt-image-2", " demo ", "demo"])

    assert secret.startswith("sk-") and len(secret) >= 40
    assert key.id.startswith("key_") and len(key.id) == 4 + 16
    assert key.prefix == secret[:7]
    assert key.models == ["gpt-image-2", "demo"]
    assert key.active and key.allows_model("demo") and not key.allows_model("dall-e-3")
    assert await store.authenticate(secret) == key

    found = await store.authenticate(secret)
    assert found is not None and found.created_at.tzinfo is not None
    assert before - timedelta(seconds=1) <= found.created_at <= datetime.now(UTC) + timedelta(seconds=1)


async def test_a_key_for_every_model(engine: AsyncEngine) -> None:
    key, _ = await KeyStore(engine).create("bob")
    assert key.models is None and key.allows_model("anything")
    async with engine.connect() as connection:
        stored = (
            await connection.execute(text("SELECT COUNT(*) FROM api_keys WHERE models IS NULL"))
        ).scalar()
    assert stored == 1


async def test_list_shows_every_key_oldest_first(engine: AsyncEngine) -> None:
    store = KeyStore(engine)
    first, _ = await store.create("first")
    second, _ = await store.create("second", models=["demo"])
    await store.revoke(first.id)

    listed = await store.list()
    assert [key.id for key in listed] == [first.id, second.id]
    assert listed[0].revoked_at is not None and listed[0].revoked_at.tzinfo is not None
    assert listed[1] == second
    assert await store.get(second.id) == second
    assert await store.get("key_missing") is None


async def test_revoke(engine: AsyncEngine) -> None:
    store = KeyStore(engine)
    key, secret = await store.create("carol")
    other, other_secret = await store.create("dave")
    assert await store.count_active() == 2

    assert await store.revoke(key.id) is True
    assert await store.authenticate(secret) is None
    assert await store.authenticate(other_secret) == other
    assert await store.count_active() == 1

    assert await store.revoke(key.id) is False  # already revoked
    assert await store.revoke("key_0000000000000000") is False  # unknown


@pytest.mark.parametrize("secret", ["", "sk-unknown", "not-even-a-key", "sk-" + "x" * 5000])
async def test_unknown_secrets_are_refused(engine: AsyncEngine, secret: str) -> None:
    await KeyStore(engine).create("erin")
    assert await KeyStore(engine).authenticate(secret) is None


async def test_only_the_hash_is_stored(engine: AsyncEngine, database_url: str) -> None:
    _, secret = await KeyStore(engine).create("frank")
    assert hash_key(secret) == hashlib.sha256(secret.encode()).hexdigest()

    async with engine.connect() as connection:
        rows = (await connection.execute(select(ApiKeyRow.__table__))).all()
    (row,) = rows
    assert row.key_hash == hash_key(secret)
    assert all(secret not in str(value) for value in row)

    database = make_url(database_url).database
    if make_url(database_url).get_backend_name() == "sqlite" and database:
        # The file and its write-ahead log hold every byte SQLite ever wrote for this database.
        files = [Path(database), Path(database + "-wal")]
        assert all(secret.encode() not in path.read_bytes() for path in files if path.exists())


async def test_bad_names_and_model_lists_are_refused(engine: AsyncEngine) -> None:
    store = KeyStore(engine)
    with pytest.raises(ValueError, match="name"):
        await store.create("   ")
    with pytest.raises(ValueError, match="models"):
        await store.create("grace", models=[" ", ""])
    assert await store.list() == []


def test_api_key_is_a_plain_value() -> None:
    moment = datetime(2025, 1, 1, tzinfo=UTC)
    key = ApiKey("key_1", "n", "sk-abcd", None, moment, moment)
    assert not key.active
