"""Calling the admin API of a live gateway, and waiting for a request's log row."""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.conftest import ADMIN_KEY, LiveGateway


def admin(gateway: LiveGateway, key: str | None = ADMIN_KEY) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=f"{gateway.url}/admin", headers=headers, timeout=30)


def wait_for_log(gateway: LiveGateway, request_id: str, timeout_s: float = 30) -> dict[str, Any]:
    """The log row of ``request_id``, once the batched writer has written it."""
    deadline = time.monotonic() + timeout_s
    with admin(gateway) as client:
        while True:
            response = client.get(f"/logs/{request_id}")
            if response.status_code == 200:
                row: dict[str, Any] = response.json()
                return row
            assert response.status_code == 404, response.text
            if time.monotonic() > deadline:
                raise AssertionError(f"no log row for {request_id} after {timeout_s} s")
            time.sleep(0.1)


def logs_of(gateway: LiveGateway, **params: Any) -> list[dict[str, Any]]:
    with admin(gateway) as client:
        response = client.get("/logs", params={"limit": 1000, **params})
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data
