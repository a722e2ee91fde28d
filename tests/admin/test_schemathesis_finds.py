"""The 500s the schemathesis run found on the admin API, kept as plain regression tests.

Each request is the one schemathesis reported (shortened where the rest did not matter).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.admin.helpers import admin
from tests.conftest import LiveGateway


@pytest.fixture
def client(gateway: LiveGateway) -> Any:
    with admin(gateway) as client:
        yield client


def assert_400(response: httpx.Response, param: str) -> None:
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param, response.text


def test_a_null_name_or_flag_in_a_patch_is_a_400(client: httpx.Client) -> None:
    key_id = client.post("/keys", json={"name": "k"}).json()["id"]
    client.post("/groups", json={"name": "g"})
    # Was: AttributeError 'NoneType' object has no attribute 'strip' (500), for any key id.
    for path in (f"/keys/{key_id}", "/keys/0"):
        assert_400(client.patch(path, json={"models": [], "name": None, "rpm": 1}), "name")
        assert_400(client.patch(path, json={"enabled": None}), "enabled")
    for path in ("/groups/g", "/groups/0"):
        assert_400(client.patch(path, json={"models": [], "name": None, "rpm": 1}), "name")
        assert_400(client.patch(path, json={"price_multiplier": None}), "price_multiplier")
    # Nulls that mean "no limit" still work.
    cleared = client.patch(f"/keys/{key_id}", json={"rpm": None, "models": None, "quota_usd": None})
    assert cleared.status_code == 200, cleared.text
    assert client.get(f"/keys/{key_id}").json()["name"] == "k"


CHANNEL = {"name": "t", "provider": "openai", "base_url": "http://127.0.0.1:9/v1", "models": ["m"]}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("priority", 1729062222666894520877056),  # was: OverflowError in the INTEGER column (500)
        ("priority", -(2**31)),
        ("weight", 26225267000),
        ("timeout_s", 1.2629820420048622e16),
        ("max_concurrency", 2**40),
    ],
)
def test_channel_numbers_are_bounded(client: httpx.Client, field: str, value: Any) -> None:
    assert_400(client.post("/channels", json={**CHANNEL, field: value}), field)
    assert client.post("/channels", json=CHANNEL).status_code == 201
    assert_400(client.patch("/channels/t", json={field: value}), field)
    defaults = {"priority": 0, "weight": 1, "timeout_s": 300.0, "max_concurrency": None}
    assert client.get("/channels/t").json()[field] == defaults[field]
