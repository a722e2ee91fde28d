"""Money on the admin API is bounded: an absurd amount is a 400 naming the field, never a 500.

A typo like ``"1e30"`` once reached the database as an integer past 64 bits (500, traceback).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.admin.helpers import admin
from tests.conftest import LiveGateway

HUGE = ["1e30", 1e30, "1e1000000", "99999999999999", "1000000000.000001"]


def assert_400(response: httpx.Response, param: str) -> None:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", param), error
    assert len(error["message"]) > 10, error


@pytest.fixture
def client(gateway: LiveGateway) -> Any:
    with admin(gateway) as client:
        yield client


def test_quotas_are_bounded(client: httpx.Client) -> None:
    for amount in HUGE:
        assert_400(client.post("/keys", json={"name": "k", "quota_usd": amount}), "quota_usd")
    key = client.post("/keys", json={"name": "k", "quota_usd": "1000000000"})
    assert key.status_code == 201, key.text
    key_id = key.json()["id"]
    for amount in HUGE:
        assert_400(client.patch(f"/keys/{key_id}", json={"quota_usd": amount}), "quota_usd")
        assert_400(client.patch(f"/keys/{key_id}", json={"add_quota_usd": amount}), "add_quota_usd")
    # Each amount is fine alone; the sum would pass the ceiling: only the store can tell.
    assert_400(client.patch(f"/keys/{key_id}", json={"add_quota_usd": "1"}), "add_quota_usd")
    after = client.get(f"/keys/{key_id}").json()
    assert after["quota_usd"] == after["balance_usd"] == "1000000000.000000"
    assert len(client.get("/keys").json()["data"]) == 1


def test_group_multipliers_are_bounded(client: httpx.Client) -> None:
    for value in ["1e30", 1e30, "1000.5", "1e-30", "0.1234567"]:
        assert_400(client.post("/groups", json={"name": "g", "price_multiplier": value}), "price_multiplier")
    group = client.post("/groups", json={"name": "g", "price_multiplier": "0.000001"})
    assert group.status_code == 201, group.text
    assert_400(client.patch("/groups/g", json={"price_multiplier": "1e30"}), "price_multiplier")
    assert client.get("/groups/g").json()["price_multiplier"] == "0.000001"


@pytest.mark.parametrize("kind", ["per_image", "per_token"])
def test_prices_are_bounded(client: httpx.Client, kind: str) -> None:
    field = "default" if kind == "per_image" else "image_out"
    for amount in ["1e30", 1e30, "1e1000000", "10000.01", "1e-30"]:
        response = client.put("/prices/demo", json={"price": {kind: {field: amount}}})
        assert_400(response, "price")
        assert f"{kind}.{field}" in response.json()["error"]["message"]
    assert client.get("/prices/demo").json().get("source") != "db"  # demo ships free: no price at all
    done = client.put("/prices/demo", json={"price": {kind: {field: "10000"}}})
    assert done.status_code == 200, done.text
    assert done.json()["price"][kind][field] == "10000"
