"""Async tasks (SPEC §10) end to end over HTTP: submit, poll, wait, cancel, list, ownership, money."""

from __future__ import annotations

import base64
import time
from decimal import Decimal
from typing import Any

import pytest
import requests

from tests.billing.accounts import DEMO_PRICE, PRICED_DEMO, kinds, make_key, money
from tests.conftest import ADMIN_KEY, GatewayFactory, LiveGateway, image_bytes, open_image, openai_channel
from tests.fakes.openai_upstream import FakeOpenAIUpstream

QUOTA = Decimal(1)  # USD
QUOTA_MICROS = 1_000_000


def auth(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def submit(gw: LiveGateway, secret: str, path: str = "/v1/images/generations/async", **kw: Any) -> Any:
    body = {"model": "demo", "prompt": "a lighthouse at dusk", "size": "1024x1024", **kw.pop("json", {})}
    return requests.post(
        f"{gw.url}{path}", json=body, headers={**auth(secret), **kw.pop("headers", {})}, timeout=30
    )


def poll_until_ended(gw: LiveGateway, secret: str, task_id: str, timeout_s: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        answer = requests.get(f"{gw.url}/v1/images/tasks/{task_id}", headers=auth(secret), timeout=10)
        assert answer.status_code == 200, answer.text
        assert answer.headers["cache-control"] == "no-store"
        task: dict[str, Any] = answer.json()
        if task["status"] in ("completed", "failed", "cancelled"):
            assert "retry-after" not in answer.headers
            return task
        assert answer.headers["retry-after"] == "3"
        assert time.monotonic() < deadline, task
        time.sleep(0.1)


@pytest.fixture
def gw(make_gateway: GatewayFactory) -> LiveGateway:
    return make_gateway(task_poll_s=0.1, **PRICED_DEMO)


def test_generation_task_submit_poll_completed_with_a_real_image(gw: LiveGateway) -> None:
    url = gw.settings.resolved_database_url
    key, secret = make_key(url, quota_usd=QUOTA)
    answer = submit(gw, secret, json={"response_format": "b64_json"})
    assert answer.status_code == 202, answer.text
    task = answer.json()
    assert task["id"].startswith("task_")
    assert answer.headers["location"] == f"/v1/images/tasks/{task['id']}"
    assert answer.headers["retry-after"] == "3"
    assert task["object"] == "image.generation.task"
    assert task["status"] in ("queued", "processing")
    assert task["model"] == "demo" and task["poll_url"] == f"/v1/images/tasks/{task['id']}"
    assert isinstance(task["created_at"], int)

    done = poll_until_ended(gw, secret, task["id"])
    assert done["status"] == "completed", done
    assert done["started_at"] >= done["created_at"] and done["completed_at"] >= done["started_at"]
    image = open_image(base64.b64decode(done["result"]["data"][0]["b64_json"]))
    assert image.size == (1024, 1024)
    assert done["result"]["size"] == "1024x1024"
    # Charged exactly once, like a sync request; balance equals the ledger.
    assert kinds(url, task["id"]) == [("hold", -DEMO_PRICE), ("release", DEMO_PRICE), ("charge", -DEMO_PRICE)]
    assert money(url, key.id) == (QUOTA_MICROS - DEMO_PRICE, QUOTA_MICROS - DEMO_PRICE)


def test_url_result_is_exactly_the_sync_body_shape(gw: LiveGateway) -> None:
    _, secret = make_key(gw.settings.resolved_database_url)
    task = submit(gw, secret, json={"response_format": "url"}).json()
    done = poll_until_ended(gw, secret, task["id"])
    sync = requests.post(
        f"{gw.url}/v1/images/generations",
        json={
            "model": "demo",
            "prompt": "a lighthouse at dusk",
            "size": "1024x1024",
            "response_format": "url",
        },
        headers=auth(secret),
        timeout=30,
    ).json()
    assert set(done["result"]) == set(sync)
    assert set(done["result"]["data"][0]) == set(sync["data"][0])
    image = requests.get(done["result"]["data"][0]["url"], timeout=10)
    assert open_image(image.content).size == (1024, 1024)


def test_multipart_edit_task_completes_with_a_real_image(gw: LiveGateway) -> None:
    _, secret = make_key(gw.settings.resolved_database_url)
    answer = requests.post(
        f"{gw.url}/v1/images/edits/async",
        data={"model": "demo", "prompt": "make it glow", "response_format": "b64_json", "size": "1024x1536"},
        files={"image[]": ("red.png", image_bytes((512, 768)), "application/octet-stream")},
        headers=auth(secret),
        timeout=30,
    )
    assert answer.status_code == 202, answer.text
    assert answer.json()["object"] == "image.edit.task"
    done = poll_until_ended(gw, secret, answer.json()["id"])
    assert done["status"] == "completed", done
    assert open_image(base64.b64decode(done["result"]["data"][0]["b64_json"])).size == (1024, 1536)


def test_prefer_respond_async_on_the_sync_endpoints_and_prefer_wait(gw: LiveGateway) -> None:
    _, secret = make_key(gw.settings.resolved_database_url)
    answer = submit(gw, secret, path="/v1/images/generations", headers={"Prefer": "respond-async"})
    assert answer.status_code == 202 and answer.json()["id"].startswith("task_")
    waited = submit(gw, secret, path="/v1/images/generations", headers={"Prefer": "respond-async, wait=20"})
    assert waited.status_code == 200, waited.text
    assert waited.json()["status"] == "completed" and waited.json()["result"]["data"]
    assert "location" not in waited.headers
    plain = submit(gw, secret, path="/v1/images/generations")
    assert plain.status_code == 200 and "data" in plain.json()  # no Prefer: the sync answer


def test_submit_errors_are_the_sync_errors(gw: LiveGateway) -> None:
    _, secret = make_key(gw.settings.resolved_database_url, quota_usd=Decimal("0.001"))
    bad_size = submit(gw, secret, json={"model": "demo", "size": "1000x7"})
    assert bad_size.status_code == 400 and bad_size.json()["error"]["param"] == "size"
    unknown = submit(gw, secret, json={"model": "nope"})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "model_not_found"
    poor = submit(gw, secret)
    assert poor.status_code == 429 and poor.json()["error"]["code"] == "insufficient_quota"
    no_key = requests.post(f"{gw.url}/v1/images/generations/async", json={}, timeout=10)
    assert no_key.status_code == 401
    bad_hook = submit(gw, ADMIN_KEY, json={"webhook_url": "ftp://example.com/x"})
    assert bad_hook.status_code == 400 and bad_hook.json()["error"]["param"] == "webhook_url"


def test_another_key_gets_404_and_the_admin_key_sees_it(gw: LiveGateway) -> None:
    url = gw.settings.resolved_database_url
    _, owner = make_key(url, name="owner")
    _, other = make_key(url, name="other")
    task = submit(gw, owner).json()
    for method, path in (
        ("GET", f"/v1/images/tasks/{task['id']}"),
        ("POST", f"/v1/images/tasks/{task['id']}/cancel"),
        ("GET", f"/v1/images/tasks/{task['id']}/events"),
    ):
        answer = requests.request(method, f"{gw.url}{path}", headers=auth(other), timeout=10)
        assert answer.status_code == 404, (path, answer.text)
        assert answer.json()["error"]["code"] == "task_not_found"
    assert requests.get(f"{gw.url}/v1/images/tasks", headers=auth(other), timeout=10).json()["data"] == []
    seen = requests.get(f"{gw.url}/v1/images/tasks/{task['id']}", headers=auth(ADMIN_KEY), timeout=10)
    assert seen.status_code == 200 and seen.json()["id"] == task["id"]


def test_list_is_newest_first_with_has_more_and_a_status_filter(gw: LiveGateway) -> None:
    _, secret = make_key(gw.settings.resolved_database_url)
    ids = [submit(gw, secret).json()["id"] for _ in range(3)]
    for task_id in ids:
        poll_until_ended(gw, secret, task_id)
    page = requests.get(f"{gw.url}/v1/images/tasks?limit=2", headers=auth(secret), timeout=10).json()
    assert page["object"] == "list" and page["has_more"] is True
    assert [task["id"] for task in page["data"]] == ids[::-1][:2]
    rest = requests.get(
        f"{gw.url}/v1/images/tasks?limit=2&after={page['last_id']}", headers=auth(secret), timeout=10
    ).json()
    assert [task["id"] for task in rest["data"]] == [ids[0]] and rest["has_more"] is False
    done = requests.get(f"{gw.url}/v1/images/tasks?status=completed", headers=auth(secret), timeout=10).json()
    assert len(done["data"]) == 3
    none = requests.get(f"{gw.url}/v1/images/tasks?status=failed", headers=auth(secret), timeout=10).json()
    assert none["data"] == []
    bad = requests.get(f"{gw.url}/v1/images/tasks?status=nope", headers=auth(secret), timeout=10)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "status"


# -- against a fake upstream: slow, failing ------------------------------------------------------


def upstream_gateway(
    make_gateway: GatewayFactory, upstream: FakeOpenAIUpstream, **settings: Any
) -> LiveGateway:
    return make_gateway(
        task_poll_s=0.1,
        channels=[openai_channel(upstream, ["gpt-image-1"], timeout_s=20)],
        **settings,
    )


def test_cancel_releases_the_hold_of_a_running_and_of_a_queued_task(
    make_gateway: GatewayFactory, upstream: FakeOpenAIUpstream
) -> None:
    gw = upstream_gateway(make_gateway, upstream, task_concurrency=1)
    url = gw.settings.resolved_database_url
    key, secret = make_key(url, quota_usd=QUOTA)
    upstream.delay_s = 5
    running = submit(gw, secret, json={"model": "gpt-image-1", "quality": "low"}).json()
    queued = submit(gw, secret, json={"model": "gpt-image-1", "quality": "low"}).json()
    deadline = time.monotonic() + 10
    while (
        requests.get(f"{gw.url}/v1/images/tasks/{running['id']}", headers=auth(secret), timeout=10).json()[
            "status"
        ]
        != "processing"
    ):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    waiting = requests.get(
        f"{gw.url}/v1/images/tasks/{queued['id']}", headers=auth(secret), timeout=10
    ).json()
    assert waiting["status"] == "queued" and waiting["queue_position"] == 0

    for task in (queued, running):
        answer = requests.post(
            f"{gw.url}/v1/images/tasks/{task['id']}/cancel", headers=auth(secret), timeout=20
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "cancelled"
        held = [amount for kind, amount in kinds(url, task["id"]) if kind == "hold"]
        assert kinds(url, task["id"]) == [("hold", held[0]), ("release", -held[0])]
    assert money(url, key.id) == (QUOTA_MICROS, QUOTA_MICROS)
    again = requests.post(f"{gw.url}/v1/images/tasks/{queued['id']}/cancel", headers=auth(secret), timeout=10)
    assert again.json()["status"] == "cancelled"  # already done: the task as it is


def test_a_failing_upstream_fails_the_task_with_the_error_and_no_charge(
    make_gateway: GatewayFactory, upstream: FakeOpenAIUpstream
) -> None:
    gw = upstream_gateway(make_gateway, upstream)
    url = gw.settings.resolved_database_url
    key, secret = make_key(url, quota_usd=QUOTA)
    upstream.fail_status = 400
    upstream.fail_body = {
        "error": {
            "message": "Your request was rejected.",
            "type": "invalid_request_error",
            "param": None,
            "code": "moderation_blocked",
        }
    }
    task = submit(gw, secret, json={"model": "gpt-image-1"}).json()
    done = poll_until_ended(gw, secret, task["id"])
    assert done["status"] == "failed"
    assert done["error"]["code"] == "moderation_blocked"
    assert set(done["error"]) == {"message", "type", "param", "code"}
    assert "result" not in done
    assert [kind for kind, _ in kinds(url, task["id"])] == ["hold", "release"]
    assert money(url, key.id) == (QUOTA_MICROS, QUOTA_MICROS)


def read_events(response: requests.Response) -> list[tuple[str, dict[str, Any]]]:
    import json

    events, name = [], ""
    for line in response.iter_lines(decode_unicode=True):
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            events.append((name, json.loads(line.removeprefix("data: "))))
    return events


def test_events_replay_from_the_start_for_a_late_subscriber_then_from_the_stored_result(
    make_gateway: GatewayFactory, upstream: FakeOpenAIUpstream
) -> None:
    gw = upstream_gateway(make_gateway, upstream)
    _, secret = make_key(gw.settings.resolved_database_url)
    upstream.after_partials_delay_s = 1.5
    task = submit(
        gw, secret, json={"model": "gpt-image-1", "partial_images": 2, "response_format": "b64_json"}
    ).json()
    deadline = time.monotonic() + 10
    while (
        requests.get(f"{gw.url}/v1/images/tasks/{task['id']}", headers=auth(secret), timeout=10).json()[
            "partial_images_received"
        ]
        < 2
    ):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    # Subscribing after both partials were made: they are replayed, then the end follows live.
    with requests.get(
        f"{gw.url}/v1/images/tasks/{task['id']}/events", headers=auth(secret), stream=True, timeout=20
    ) as live:
        assert live.headers["content-type"].startswith("text/event-stream")
        events = read_events(live)
    assert [name for name, _ in events] == [
        "image_generation.partial_image",
        "image_generation.partial_image",
        "image_generation.completed",
    ]
    assert [payload["partial_image_index"] for _, payload in events[:2]] == [0, 1]
    assert open_image(base64.b64decode(events[2][1]["b64_json"])).size[0] > 0
    # After the end: the final event, from the stored result.
    with requests.get(
        f"{gw.url}/v1/images/tasks/{task['id']}/events", headers=auth(secret), stream=True, timeout=20
    ) as late:
        after = read_events(late)
    assert [name for name, _ in after] == ["image_generation.completed"]
    assert after[0][1]["b64_json"] == events[2][1]["b64_json"]


def test_a_run_longer_than_its_limit_fails_cleanly(
    make_gateway: GatewayFactory, upstream: FakeOpenAIUpstream
) -> None:
    gw = upstream_gateway(make_gateway, upstream, task_run_timeout_s=0.5)
    url = gw.settings.resolved_database_url
    key, secret = make_key(url, quota_usd=QUOTA)
    upstream.delay_s = 3
    task = submit(gw, secret, json={"model": "gpt-image-1"}).json()
    done = poll_until_ended(gw, secret, task["id"])
    assert done["status"] == "failed" and done["error"]["code"] == "task_timeout"
    assert money(url, key.id) == (QUOTA_MICROS, QUOTA_MICROS)
