"""Task webhooks (SPEC §10): Standard Webhooks signatures checked by the `standardwebhooks` package,
retries with the same webhook-id, SSRF rules, attempts in the admin API, admin key settings."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from aiohttp import web
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from tests.api.test_tasks import auth, poll_until_ended, submit
from tests.billing.accounts import PRICED_DEMO, make_key
from tests.conftest import ADMIN_KEY, GatewayFactory, LiveGateway, wait_for
from tests.fakes.loopback import LoopbackServer


class Receiver(LoopbackServer):
    """A webhook endpoint that answers the first ``fail_first`` deliveries with 500."""

    def __init__(self, fail_first: int = 0) -> None:
        super().__init__()
        self.fail_first = fail_first
        self.received: list[tuple[dict[str, str], bytes]] = []

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/hook", self._hook)

    async def _hook(self, request: web.Request) -> web.Response:
        self.received.append((dict(request.headers), await request.read()))
        if len(self.received) <= self.fail_first:
            return web.Response(status=500, text="not now")
        return web.Response(status=204)


def admin(gw: LiveGateway, method: str, path: str, **kw: Any) -> requests.Response:
    return requests.request(method, f"{gw.url}/admin{path}", headers=auth(ADMIN_KEY), timeout=10, **kw)


@pytest.fixture
def receiver() -> Any:
    server = Receiver(fail_first=1)
    server.start_in_thread()
    yield server
    server.stop()


def test_a_signed_webhook_retried_after_a_500_is_delivered_with_the_same_id(
    make_gateway: GatewayFactory, receiver: Receiver
) -> None:
    gw = make_gateway(
        task_poll_s=0.1, allow_private_fetch=True, task_webhook_backoff_s=[0.3, 0.3], **PRICED_DEMO
    )
    key, secret = make_key(gw.settings.resolved_database_url)
    rotated = admin(gw, "POST", f"/keys/{key.id}/webhook-secret")
    assert rotated.status_code == 200, rotated.text
    signing = rotated.json()["secret"]
    assert signing.startswith("whsec_")
    task = submit(gw, secret, json={"webhook_url": f"{receiver.url}/hook"}).json()
    poll_until_ended(gw, secret, task["id"])
    wait_for(lambda: len(receiver.received) >= 2)

    (first_headers, first_body), (headers, body) = receiver.received[:2]
    assert first_headers["webhook-id"] == headers["webhook-id"]
    assert headers["webhook-id"].startswith("msg_")
    payload = Webhook(signing).verify(body, headers)  # raises on a bad signature or stale timestamp
    assert payload["type"] == "image.task.completed"
    assert payload["data"]["id"] == task["id"] and payload["data"]["status"] == "completed"
    assert payload["data"]["result"]["data"]
    assert isinstance(payload["timestamp"], int)
    assert json.loads(first_body) == json.loads(body)
    with pytest.raises(WebhookVerificationError):  # the package really checks: another secret fails
        Webhook("whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB").verify(body, headers)

    def delivered() -> bool:
        return admin(gw, "GET", f"/tasks/{task['id']}").json()["webhook"]["state"] == "delivered"

    wait_for(delivered)
    shown = admin(gw, "GET", f"/tasks/{task['id']}").json()
    assert [attempt["status_code"] for attempt in shown["webhook"]["attempts"]] == [500, 204]
    assert shown["webhook"]["id"] == headers["webhook-id"]
    assert len(receiver.received) == 2


def test_the_keys_default_webhook_url_is_used_and_set_through_the_admin_api(
    make_gateway: GatewayFactory, receiver: Receiver
) -> None:
    receiver.fail_first = 0
    gw = make_gateway(task_poll_s=0.1, allow_private_fetch=True, **PRICED_DEMO)
    key, secret = make_key(gw.settings.resolved_database_url)
    patched = admin(gw, "PATCH", f"/keys/{key.id}", json={"webhook_url": f"{receiver.url}/hook"})
    assert patched.status_code == 200, patched.text
    bad = admin(gw, "PATCH", f"/keys/{key.id}", json={"webhook_url": "file:///etc/passwd"})
    assert bad.status_code == 400
    signing = admin(gw, "POST", f"/keys/{key.id}/webhook-secret").json()["secret"]
    task = submit(gw, secret).json()
    cancelled_or_done = poll_until_ended(gw, secret, task["id"])
    wait_for(lambda: len(receiver.received) == 1)
    headers, body = receiver.received[0]
    payload = Webhook(signing).verify(body, headers)
    assert payload["data"]["id"] == task["id"]
    assert payload["type"] == f"image.task.{cancelled_or_done['status']}"
    assert admin(gw, "POST", "/keys/key_nope/webhook-secret").status_code == 404


def test_a_webhook_to_a_private_address_is_refused_and_recorded(
    make_gateway: GatewayFactory, receiver: Receiver
) -> None:
    gw = make_gateway(task_poll_s=0.1, task_webhook_backoff_s=[0.2], **PRICED_DEMO)
    _, secret = make_key(gw.settings.resolved_database_url)
    task = submit(gw, secret, json={"webhook_url": f"{receiver.url}/hook"}).json()
    poll_until_ended(gw, secret, task["id"])

    def given_up() -> bool:
        return admin(gw, "GET", f"/tasks/{task['id']}").json()["webhook"]["state"] == "failed"

    wait_for(given_up)
    attempts = admin(gw, "GET", f"/tasks/{task['id']}").json()["webhook"]["attempts"]
    assert len(attempts) == 2 and all(a["status_code"] is None and "public" in a["error"] for a in attempts)
    assert receiver.received == []
