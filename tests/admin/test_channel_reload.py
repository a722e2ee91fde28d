"""A channel written through the admin API rebuilds only what changed.

Adding or changing one channel keeps every other channel's provider instance (a local model is
not reloaded, an upstream's state survives); a removed or disabled channel's provider is closed;
a change of routing fields only (weight, priority, models) keeps even that channel's provider.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI

from imagegate.services.gateway import Gateway
from tests.admin.helpers import admin
from tests.conftest import GatewayFactory, LiveGateway
from tests.fakes.provider import FakeProvider


@pytest.fixture
def served(make_gateway: GatewayFactory) -> tuple[LiveGateway, FastAPI]:
    gateway = make_gateway(
        channels=[
            {"name": "file-a", "provider": "fake", "models": ["m"]},
            {"name": "file-b", "provider": "fake", "models": ["m"]},
        ]
    )
    assert gateway.app is not None
    return gateway, gateway.app


def providers(app: FastAPI) -> dict[str, FakeProvider]:
    gateway: Gateway = app.state.gateway
    found = {channel.name: channel.provider for channel in gateway.catalogs.current.channels}
    return {name: provider for name, provider in found.items() if isinstance(provider, FakeProvider)}


def body(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "provider": "fake", "models": ["m"], **fields}


def test_one_channel_change_reuses_every_unchanged_provider(served: tuple[LiveGateway, FastAPI]) -> None:
    gateway, app = served
    start = providers(app)
    assert set(start) == {"file-a", "file-b"}
    # The fake providers serve real requests (no HTTP behind them).
    made = gateway.client().images.generate(model="m", prompt="a kite", response_format="b64_json")
    assert made.data and sum(len(p.calls) for p in start.values()) == 1
    with admin(gateway) as client:
        assert client.post("/channels", json=body("db-c")).status_code == 201
        added = providers(app)
        assert added["file-a"] is start["file-a"] and added["file-b"] is start["file-b"]
        assert added["db-c"].started == 1

        assert client.post("/channels", json=body("db-d")).status_code == 201
        more = providers(app)
        assert all(more[name] is added[name] for name in added)

        # Routing fields only: even the changed channel keeps its provider.
        patched = client.patch("/channels/db-c", json={"weight": 4, "priority": 1, "models": ["m", "n"]})
        assert patched.status_code == 200, patched.text
        routed = providers(app)
        assert all(routed[name] is more[name] for name in more)
        assert app.state.gateway.catalogs.current.channel("db-c").config.weight == 4

        # A provider field: that channel alone gets a new provider; the old one is closed.
        assert client.patch("/channels/db-c", json={"options": {"tone": "warm"}}).status_code == 200
        changed = providers(app)
        assert changed["db-c"] is not routed["db-c"] and routed["db-c"].closed
        assert all(changed[name] is routed[name] for name in ("file-a", "file-b", "db-d"))

        # Disabled, then removed: closed, the others untouched and never closed.
        assert client.patch("/channels/db-d", json={"enabled": False}).status_code == 200
        assert "db-d" not in providers(app) and changed["db-d"].closed
        assert client.delete("/channels/db-c").status_code == 204
        end = providers(app)
        assert set(end) == {"file-a", "file-b"} and changed["db-c"].closed
        assert end["file-a"] is start["file-a"] and end["file-b"] is start["file-b"]
        assert not start["file-a"].closed and not start["file-b"].closed

        listed = {row["name"]: row for row in client.get("/channels").json()["data"]}
        assert listed["db-d"]["enabled"] is False and listed["db-d"]["source"] == "database"
        assert listed["file-a"]["source"] == "config" and listed["demo"]["source"] == "builtin"


def test_a_refused_change_keeps_the_catalog_and_the_row(served: tuple[LiveGateway, FastAPI]) -> None:
    gateway, app = served
    with admin(gateway) as client:
        assert client.post("/channels", json=body("db-c")).status_code == 201
        before = app.state.gateway.catalogs.current
        refused = client.patch("/channels/db-c", json={"provider": "openai"})  # openai needs a key
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_channel"
        assert "needs api_key" in refused.json()["error"]["message"]
        assert app.state.gateway.catalogs.current is before
        assert client.get("/channels/db-c").json()["provider"] == "fake"
