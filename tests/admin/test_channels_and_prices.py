"""Channels stored through the admin API serve at once; prices set there change what is charged."""

from __future__ import annotations

from decimal import Decimal

import openai
import pytest

from tests.admin.helpers import admin, wait_for_log
from tests.conftest import GatewayFactory, LiveGateway, openai_channel
from tests.fakes.openai_upstream import FakeOpenAIUpstream


def channel_body(upstream: FakeOpenAIUpstream, **changes: object) -> dict[str, object]:
    body: dict[str, object] = openai_channel(upstream, ["gpt-image-1"], name="db-openai", timeout_s=10)
    body.update(changes)
    return body


def test_a_new_channel_serves_at_once_and_a_deleted_one_stops(
    gateway: LiveGateway, upstream: FakeOpenAIUpstream
) -> None:
    sdk = gateway.client()
    with pytest.raises(openai.NotFoundError):
        sdk.images.generate(model="gpt-image-1", prompt="before")

    with admin(gateway) as client:
        created = client.post("/channels", json=channel_body(upstream))
        assert created.status_code == 201, created.text
        shown = created.json()
        assert upstream.api_key not in created.text
        assert shown["api_key_hint"] == f"{upstream.api_key[:4]}…{upstream.api_key[-4:]}"
        assert (shown["source"], shown["models"]) == ("database", ["gpt-image-1"])

        raw = sdk.images.with_raw_response.generate(model="gpt-image-1", prompt="a fox", size="1024x1024")
        assert raw.parse().data
        assert upstream.requests[-1].body["model"] == "gpt-image-1"
        assert wait_for_log(gateway, raw.headers["x-request-id"])["channel"] == "db-openai"
        assert sdk.models.retrieve("gpt-image-1").id == "gpt-image-1"

        fetched = client.get("/channels/db-openai")
        assert fetched.json() == shown and upstream.api_key not in fetched.text

        # An update re-points the model at once.
        renamed = client.patch("/channels/db-openai", json={"model_map": {"gpt-image-1": "gpt-image-1-2025"}})
        assert renamed.status_code == 200, renamed.text
        assert renamed.json()["api_key_hint"] == shown["api_key_hint"]  # the secret was kept
        sdk.images.generate(model="gpt-image-1", prompt="again")
        assert upstream.requests[-1].body["model"] == "gpt-image-1-2025"

        assert client.delete("/channels/db-openai").status_code == 204
        assert client.get("/channels/db-openai").status_code == 404
        assert client.delete("/channels/db-openai").status_code == 404

    with pytest.raises(openai.NotFoundError) as gone:
        sdk.images.generate(model="gpt-image-1", prompt="after")
    assert gone.value.code == "model_not_found"


def test_channels_persist_across_restarts(make_gateway: GatewayFactory, upstream: FakeOpenAIUpstream) -> None:
    first = make_gateway()
    with admin(first) as client:
        assert client.post("/channels", json=channel_body(upstream)).status_code == 201
    second = make_gateway(data_dir=first.settings.data_dir)
    assert second.client().images.generate(model="gpt-image-1", prompt="restarted").data


def test_channel_validation_and_conflicts(
    upstream_gateway: LiveGateway, upstream: FakeOpenAIUpstream
) -> None:
    with admin(upstream_gateway) as client:
        for body in (
            channel_body(upstream, provider="nope"),
            channel_body(upstream, models=[]),
            channel_body(upstream, weight=0),
            channel_body(upstream, name="has space"),
            channel_body(upstream, colour="red"),
        ):
            response = client.post("/channels", json=body)
            assert response.status_code == 400, (body, response.text)
        # The config file's channel is not the admin API's to change.
        taken = client.post("/channels", json=channel_body(upstream, name="fake-openai"))
        assert (taken.status_code, taken.json()["error"]["code"]) == (409, "channel_exists")
        from_config = client.get("/channels/fake-openai")
        assert from_config.json()["source"] == "config" and upstream.api_key not in from_config.text
        assert client.patch("/channels/fake-openai", json={"weight": 2}).status_code == 409
        assert client.delete("/channels/fake-openai").status_code == 409

        assert client.post("/channels", json=channel_body(upstream)).status_code == 201
        again = client.post("/channels", json=channel_body(upstream))
        assert (again.status_code, again.json()["error"]["code"]) == (409, "channel_exists")


def test_env_references_stay_references(
    gateway: LiveGateway, upstream: FakeOpenAIUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOME_UPSTREAM_KEY", upstream.api_key)
    with admin(gateway) as client:
        created = client.post("/channels", json=channel_body(upstream, api_key="env:SOME_UPSTREAM_KEY"))
        assert created.json()["api_key_hint"] == "env:SOME_UPSTREAM_KEY"
        assert gateway.client().images.generate(model="gpt-image-1", prompt="resolved").data


def test_a_channel_that_needs_a_key_is_refused_without_one(
    gateway: LiveGateway, upstream: FakeOpenAIUpstream
) -> None:
    with admin(gateway) as client:
        for key in ("", "env:IMAGEGATE_TEST_UNSET_VARIABLE"):
            refused = client.post("/channels", json=channel_body(upstream, api_key=key))
            assert refused.status_code == 400, refused.text
            error = refused.json()["error"]
            assert error["code"] == "invalid_channel" and "needs api_key" in error["message"]
        assert client.get("/channels/db-openai").status_code == 404  # nothing was stored


def test_prices_crud_changes_the_cost_logged(upstream_gateway: LiveGateway) -> None:
    sdk = upstream_gateway.client()
    with admin(upstream_gateway) as client:
        shipped = client.get("/prices/gpt-image-1")
        assert shipped.status_code == 200 and shipped.json()["source"] == "default"

        price = {"per_image": {"1024x1024/high": "0.5", "default": "0.25"}}
        put = client.put("/prices/gpt-image-1", json={"price": price})
        assert put.status_code == 200, put.text
        assert put.json()["source"] == "db"
        assert "gpt-image-1" in {p["model"] for p in client.get("/prices").json()["data"]}

        raw = sdk.images.with_raw_response.generate(
            model="gpt-image-1", prompt="x", size="1024x1024", quality="high", n=2
        )
        raw.parse()
        row = wait_for_log(upstream_gateway, raw.headers["x-request-id"])
        assert Decimal(row["cost_usd"]) == Decimal("1.0")

        assert client.put("/prices/gpt-image-1", json={"price": {"per_image": {}}}).status_code == 400
        assert client.put("/prices/gpt-image-1", json={"price": {"per_pixel": 1}}).status_code == 400

        deleted = client.delete("/prices/gpt-image-1")
        assert deleted.status_code == 200 and deleted.json()["source"] == "default"
        assert client.delete("/prices/gpt-image-1").status_code == 404

        raw = sdk.images.with_raw_response.generate(
            model="gpt-image-1", prompt="x", size="1024x1024", quality="high", n=2
        )
        raw.parse()
        row = wait_for_log(upstream_gateway, raw.headers["x-request-id"])
        assert Decimal(row["cost_usd"]) != Decimal("1.0")
