"""A client that hangs up while sending its body is a 499 in the logs: no 500, no traceback.

nginx's 499 (client closed request) is what operators grep for; a 500 with a traceback would page
someone for a client's dropped connection.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator

import pytest

from tests.admin.helpers import admin, logs_of
from tests.conftest import ADMIN_KEY, GatewayFactory, LiveGateway

MULTIPART_START = (
    b'--xyz\r\nContent-Disposition: form-data; name="prompt"\r\n\r\nmake it blue\r\n'
    b'--xyz\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n\x89PNG\r\n\x1a\n'
    + b"\x00"
    * 4096
)
CASES = [
    ("/v1/images/edits", "multipart/form-data; boundary=xyz", MULTIPART_START),
    ("/v1/images/generations", "application/json", b'{"model": "demo", "prompt": "a red'),
    ("/v1/images/edits", "application/json", b'{"model": "demo", "images": [{"image_url": "data:'),
    ("/v1/chat/completions", "application/json", b'{"model": "demo-chat", "messages": ['),
]


class Collected(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def warnings(self) -> list[str]:
        return [record.getMessage() for record in self.records if record.levelno >= logging.WARNING]

    def access_statuses(self, prefix: str) -> list[tuple[str, int]]:
        access = [record.getMessage() for record in self.records if record.name == "imagegate.access"]
        lines = [json.loads(text) for text in access]
        return [(line["endpoint"], line["status"]) for line in lines if line["endpoint"].startswith(prefix)]


@pytest.fixture
def logged() -> Iterator[Collected]:
    """What the gateway and uvicorn (its "Exception in ASGI application") log, from INFO up."""
    handler = Collected()
    loggers = [logging.getLogger(name) for name in ("imagegate", "uvicorn", "uvicorn.error")]
    for logger in loggers:
        logger.addHandler(handler)
    yield handler
    for logger in loggers:
        logger.removeHandler(handler)


@pytest.fixture
def gateway(make_gateway: GatewayFactory) -> LiveGateway:
    return make_gateway(log_level="INFO")  # the access log lines are INFO


def send_half_and_hang_up(gateway: LiveGateway, path: str, content_type: str, part: bytes) -> None:
    host, port = gateway.url.removeprefix("http://").split(":")
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {ADMIN_KEY}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {len(part) * 4}\r\n\r\n"
    ).encode()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head + part)
        time.sleep(0.2)  # the gateway is now waiting for the rest of the body


def wait_for_rows(gateway: LiveGateway, count: int, timeout_s: float = 20) -> list[dict[str, object]]:
    deadline = time.monotonic() + timeout_s
    while True:
        rows = logs_of(gateway)
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def test_a_client_that_hangs_up_mid_body_is_logged_as_499(gateway: LiveGateway, logged: Collected) -> None:
    for path, content_type, part in CASES:
        send_half_and_hang_up(gateway, path, content_type, part)

    rows = wait_for_rows(gateway, len(CASES))
    expected = sorted((path, 499) for path, _, _ in CASES)
    assert sorted((str(row["endpoint"]), row["status"]) for row in rows) == expected, rows
    assert {row["error_code"] for row in rows} == {"client_closed_request"}, rows
    assert sorted(logged.access_statuses("/v1/")) == expected
    assert logged.warnings() == []
    assert not any(record.exc_info for record in logged.records)


def test_the_admin_api_logs_a_hang_up_as_499_too(gateway: LiveGateway, logged: Collected) -> None:
    send_half_and_hang_up(gateway, "/admin/keys", "application/json", b'{"name": "half a')

    deadline = time.monotonic() + 10
    while not logged.access_statuses("/admin/keys") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert logged.access_statuses("/admin/keys") == [("/admin/keys", 499)]
    assert logged.warnings() == []
    with admin(gateway) as client:  # and the gateway is fine
        assert client.post("/keys", json={"name": "whole"}).status_code == 201
