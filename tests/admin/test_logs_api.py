"""GET /admin/logs and /admin/usage over real requests: filters, cursor pages, sums."""

from __future__ import annotations

import datetime as dt

import openai
import pytest

from tests.admin.helpers import admin, logs_of, wait_for_log
from tests.conftest import LiveGateway


def test_pages_filters_and_usage(gateway: LiveGateway) -> None:
    alice, bob = gateway.create_key("alice"), gateway.create_key("bob", models=["demo"])
    ids: list[str] = []
    for secret in (alice, alice, alice, bob):
        raw = gateway.client(api_key=secret).images.with_raw_response.generate(model="demo", prompt="p", n=2)
        raw.parse()
        ids.append(raw.headers["x-request-id"])
    with pytest.raises(openai.NotFoundError) as failed:
        gateway.client(api_key=bob).images.generate(model="nope", prompt="p")
    ids.append(failed.value.response.headers["x-request-id"])
    rows = [wait_for_log(gateway, request_id) for request_id in ids]
    alice_id, bob_id = rows[0]["key_id"], rows[3]["key_id"]

    with admin(gateway) as client:
        seen: list[str] = []
        page = client.get("/logs", params={"limit": 2}).json()
        while True:
            assert len(page["data"]) <= 2
            seen.extend(row["id"] for row in page["data"])
            if not page["has_more"]:
                assert page["next_cursor"] is None
                break
            page = client.get("/logs", params={"limit": 2, "cursor": page["next_cursor"]}).json()
        assert sorted(seen) == sorted(ids) and len(seen) == len(set(seen))
        times = [row["time"] for row in logs_of(gateway)]
        assert times == sorted(times, reverse=True)

        assert {r["id"] for r in logs_of(gateway, key_id=alice_id)} == set(ids[:3])
        assert [r["id"] for r in logs_of(gateway, key_id=bob_id, status="404")] == [ids[4]]
        assert {r["id"] for r in logs_of(gateway, model="demo", status="ok")} == set(ids[:4])
        future = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
        assert logs_of(gateway, since=future) == []
        assert len(logs_of(gateway, until=future)) == 5

        bad = client.get("/logs", params={"cursor": "garbage"})
        assert (bad.status_code, bad.json()["error"]["param"]) == (400, "cursor")
        assert client.get("/logs", params={"status": "teapot"}).status_code == 400
        assert client.get("/logs", params={"limit": 0}).status_code == 400
        missing = client.get("/logs/req_missing")
        assert (missing.status_code, missing.json()["error"]["type"]) == (404, "invalid_request_error")

        usage = client.get("/usage").json()["data"]
        by_key = {(row["key_id"], row["model"]): row for row in usage}
        assert by_key[(alice_id, "demo")]["requests"] == 3
        assert by_key[(alice_id, "demo")]["images"] == 6
        assert by_key[(bob_id, "demo")]["images"] == 2
        assert (by_key[(bob_id, "nope")]["requests"], by_key[(bob_id, "nope")]["errors"]) == (1, 1)
        assert all(dt.date.fromisoformat(row["day"]) for row in usage)
        only_bob = client.get("/usage", params={"key_id": bob_id}).json()["data"]
        assert {row["key_id"] for row in only_bob} == {bob_id}
