"""Groups and keys through the admin API: the secret once, hashes in the DB, limits that apply."""

from __future__ import annotations

import asyncio

import openai
import pytest
from sqlalchemy import select

from imagegate.db.engine import create_engine
from imagegate.db.keys import hash_key
from imagegate.db.tables import ApiKeyRow
from tests.admin.helpers import admin
from tests.conftest import LiveGateway


def stored_key_columns(gateway: LiveGateway) -> list[tuple[str, str, str]]:
    async def read() -> list[tuple[str, str, str]]:
        engine = create_engine(gateway.settings.resolved_database_url)
        try:
            async with engine.connect() as connection:
                query = select(ApiKeyRow.id, ApiKeyRow.key_hash, ApiKeyRow.key_prefix)
                return [tuple(row) for row in (await connection.execute(query)).all()]  # type: ignore[misc]
        finally:
            await engine.dispose()

    return asyncio.run(read())


def test_groups_crud(gateway: LiveGateway) -> None:
    with admin(gateway) as client:
        created = client.post("/groups", json={"name": "team-a", "price_multiplier": "0.8", "rpm": 60})
        assert created.status_code == 201, created.text
        group = created.json()
        assert (group["name"], group["price_multiplier"], group["rpm"], group["models"]) == (
            "team-a",
            "0.8",
            60,
            None,
        )
        assert client.post("/groups", json={"name": "team-a"}).json()["error"]["code"] == "group_exists"
        assert client.post("/groups", json={"name": "x", "rpm": 0}).status_code == 400

        assert [g["name"] for g in client.get("/groups").json()["data"]] == ["team-a"]
        by_name = client.get("/groups/team-a").json()
        assert by_name == client.get(f"/groups/{group['id']}").json()

        changed = client.patch("/groups/team-a", json={"models": ["demo"], "rpm": None, "name": "team-b"})
        assert changed.status_code == 200, changed.text
        assert (changed.json()["models"], changed.json()["rpm"], changed.json()["name"]) == (
            ["demo"],
            None,
            "team-b",
        )

        key = client.post("/keys", json={"name": "k", "group": "team-b"}).json()
        in_use = client.delete("/groups/team-b")
        assert (in_use.status_code, in_use.json()["error"]["code"]) == (409, "group_in_use")
        client.delete(f"/keys/{key['id']}")
        assert client.patch(f"/keys/{key['id']}", json={"group": None}).status_code == 200
        assert client.delete("/groups/team-b").status_code == 204
        missing = client.get("/groups/team-b")
        assert (missing.status_code, missing.json()["error"]["code"]) == (404, "group_not_found")


def test_the_secret_is_shown_once_and_stored_as_a_hash(gateway: LiveGateway) -> None:
    with admin(gateway) as client:
        response = client.post(
            "/keys",
            json={
                "name": "ci",
                "quota_usd": "25",
                "models": ["demo"],
                "rpm": 30,
                "expires_at": "2099-01-01T00:00:00Z",
                "ip_allowlist": ["127.0.0.1"],
            },
        )
        assert response.status_code == 201, response.text
        created = response.json()
        secret = created["key"]
        assert secret.startswith("sk-") and created["prefix"] == secret[:7]
        assert (created["quota_usd"], created["balance_usd"], created["rpm"]) == (
            "25.000000",
            "25.000000",
            30,
        )
        assert created["expires_at"].startswith("2099-01-01") and created["ip_allowlist"] == ["127.0.0.1/32"]

        listed = client.get("/keys")
        fetched = client.get(f"/keys/{created['id']}")
        for text in (listed.text, fetched.text):
            assert secret not in text and secret[7:] not in text
        assert "key" not in fetched.json()
        assert fetched.json() == {k: v for k, v in created.items() if k != "key"}

    rows = stored_key_columns(gateway)
    assert (created["id"], hash_key(secret), secret[:7]) in rows
    assert all(secret not in column for row in rows for column in row)

    # The key works on /v1, for its model only.
    sdk = gateway.client(api_key=secret)
    assert sdk.images.generate(model="demo", prompt="hi").data


def test_update_and_revoke(gateway: LiveGateway) -> None:
    with admin(gateway) as client:
        created = client.post("/keys", json={"name": "temp", "quota_usd": "1"}).json()
        key_id, secret = created["id"], created["key"]

        topped = client.patch(f"/keys/{key_id}", json={"add_quota_usd": "2.5", "rpm": 10, "name": "renamed"})
        assert topped.status_code == 200, topped.text
        assert (topped.json()["quota_usd"], topped.json()["balance_usd"]) == ("3.500000", "3.500000")
        assert (topped.json()["rpm"], topped.json()["name"]) == (10, "renamed")
        assert client.patch(f"/keys/{key_id}", json={"quota_usd": None}).json()["balance_usd"] is None
        bad = client.patch(f"/keys/{key_id}", json={"group": "no-such-group"})
        assert bad.status_code == 400
        assert client.patch(f"/keys/{key_id}", json={"colour": "red"}).status_code == 400
        assert client.patch("/keys/key_missing", json={"rpm": 1}).status_code == 404

        sdk = gateway.client(api_key=secret)
        assert sdk.models.list().data
        revoked = client.delete(f"/keys/{key_id}")
        assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
        assert client.delete(f"/keys/{key_id}").status_code == 200  # idempotent
        assert client.delete("/keys/key_missing").status_code == 404
    with pytest.raises(openai.AuthenticationError):
        sdk.models.list()


def test_invalid_bodies_are_400_in_the_openai_envelope(gateway: LiveGateway) -> None:
    with admin(gateway) as client:
        for body in (
            {},
            {"name": ""},
            {"name": "x", "quota_usd": "-1"},
            {"name": "x", "expires_at": "2099-01-01"},
        ):
            response = client.post("/keys", json=body)
            assert response.status_code == 400, (body, response.text)
            assert set(response.json()["error"]) == {"message", "type", "param", "code"}
