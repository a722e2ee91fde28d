"""Slow and idle clients cannot pin `imagegate serve` (SPEC §8), tried with raw sockets.

Before these bounds a request head that never ended, a body that stopped arriving and a
socket that never sent a byte were each held 90 s and more, and ~20k of them exhausted the
process's file descriptors.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import requests

from tests.conftest import ADMIN_KEY
from tests.server.serve import Served, served

pytestmark = pytest.mark.slow

CAP = 40


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with served(
        tmp_path_factory.mktemp("edge"),
        IMAGEGATE_HEADER_TIMEOUT_S="1",
        IMAGEGATE_BODY_TIMEOUT_S="1",
        IMAGEGATE_MAX_CONNECTIONS=str(CAP),
    ) as gateway:
        yield gateway


def _connect(gw: Served) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", gw.port), timeout=6)
    return sock


def _read_until_closed(sock: socket.socket) -> tuple[bytes, float]:
    """Everything the server sends until it closes, and how long that took."""
    started = time.monotonic()
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except TimeoutError:
        pytest.fail(f"the server held the connection for 6 s; it sent {b''.join(chunks)!r}")
    except ConnectionResetError:
        pass
    return b"".join(chunks), time.monotonic() - started


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _status_and_error(raw: bytes) -> tuple[int, dict[str, object]]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, orjson.loads(body)["error"]


def test_an_unfinished_request_head_gets_408(gw: Served) -> None:
    with _connect(gw) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        raw, waited = _read_until_closed(sock)
    status, error = _status_and_error(raw)
    assert status == 408 and error["code"] == "request_timeout"
    assert 0.8 < waited < 3


def test_a_head_sent_a_byte_at_a_time_still_times_out(gw: Served) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Drip: " + b"a" * 200
    started = time.monotonic()
    with _connect(gw) as sock:
        try:
            for byte in request:
                sock.sendall(bytes([byte]))
                time.sleep(0.05)
        except (BrokenPipeError, ConnectionResetError):
            pass
        raw, _ = _read_until_closed(sock)
    assert raw.startswith(b"HTTP/1.1 408")
    assert time.monotonic() - started < 4


def test_a_kept_alive_connection_whose_next_head_stalls_gets_its_answer_then_408(gw: Served) -> None:
    with _connect(gw) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n")
        raw, _ = _read_until_closed(sock)
    first, _, rest = raw.partition(b'{"status":"ok"}')
    assert first.startswith(b"HTTP/1.1 200")
    assert rest.startswith(b"HTTP/1.1 408")


def test_a_connection_that_never_sends_is_closed(gw: Served) -> None:
    with _connect(gw) as sock:
        raw, waited = _read_until_closed(sock)
    assert raw == b"" and 0.8 < waited < 3


def test_a_body_shorter_than_its_content_length_gets_408(gw: Served) -> None:
    with _connect(gw) as sock:
        sock.sendall(
            b"POST /v1/images/generations HTTP/1.1\r\nHost: x\r\n"
            b"Authorization: Bearer " + ADMIN_KEY.encode() + b"\r\n"
            b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
            b'{"model": "demo", '
        )
        raw, waited = _read_until_closed(sock)
    status, error = _status_and_error(raw)
    assert status == 408 and error["code"] == "request_timeout"
    assert waited < 3


def test_a_chunked_body_that_stops_gets_408(gw: Served) -> None:
    with _connect(gw) as sock:
        sock.sendall(
            b"POST /v1/images/edits HTTP/1.1\r\nHost: x\r\n"
            b"Authorization: Bearer " + ADMIN_KEY.encode() + b"\r\n"
            b"Content-Type: multipart/form-data; boundary=xyz\r\nTransfer-Encoding: chunked\r\n\r\n"
            + _chunk(b'--xyz\r\nContent-Disposition: form-data; name="prompt"\r\n\r\nslow ')
        )
        for _ in range(3):  # pieces that keep coming are fine...
            time.sleep(0.5)
            sock.sendall(_chunk(b"more "))
        raw, waited = _read_until_closed(sock)  # ...until they stop
    assert raw.startswith(b"HTTP/1.1 408")
    assert waited < 3


def test_an_answered_request_whose_body_stops_is_closed(gw: Served) -> None:
    # Refused before its body was read (no key): the rest must still come in time.
    with _connect(gw) as sock:
        sock.sendall(
            b"POST /v1/images/generations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100000\r\n\r\n" + b" " * 1000
        )
        raw, waited = _read_until_closed(sock)
    assert raw.startswith(b"HTTP/1.1 401")
    assert waited < 3


def test_connections_past_the_cap_get_503_and_health_recovers(gw: Served) -> None:
    idle = [_connect(gw) for _ in range(CAP)]
    try:
        time.sleep(0.2)
        with _connect(gw) as extra:
            raw, waited = _read_until_closed(extra)
        status, error = _status_and_error(raw)
        assert status == 503 and error["code"] == "server_busy"
        assert waited < 0.5
    finally:
        for sock in idle:
            sock.close()
    time.sleep(0.3)
    assert requests.get(f"{gw.url}/healthz", timeout=5).status_code == 200


def test_keep_alive_requests_still_work(gw: Served) -> None:
    with requests.Session() as session:
        for _ in range(3):
            assert session.get(f"{gw.url}/healthz", timeout=5).status_code == 200
            time.sleep(0.6)  # idle between requests is the keep-alive timeout's, not the head's


def test_the_bounds_are_in_the_log_when_the_cap_does_not_fit(tmp_path: Path) -> None:
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with served(tmp_path, IMAGEGATE_MAX_CONNECTIONS=str(hard * 2)) as gateway:
        assert requests.get(f"{gateway.url}/healthz", timeout=5).status_code == 200
    assert "connections capped at" in gateway.log()


def test_health_answers_under_two_thousand_idle_connections(tmp_path: Path) -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2600 <= hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # this process holds the clients
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= 2600, "raise `ulimit -n` to run this test"
    with served(tmp_path, IMAGEGATE_HEADER_TIMEOUT_S="60") as gateway:
        idle = [socket.create_connection(("127.0.0.1", gateway.port), timeout=10) for _ in range(2000)]
        try:
            started = time.monotonic()
            assert requests.get(f"{gateway.url}/healthz", timeout=5).status_code == 200
            assert time.monotonic() - started < 1
            generated = requests.post(
                f"{gateway.url}/v1/images/generations",
                headers={"Authorization": f"Bearer {ADMIN_KEY}"},
                json={"model": "demo", "prompt": "small", "size": "1024x1024", "quality": "low"},
                timeout=10,
            )
            assert generated.status_code == 200, generated.text
        finally:
            for sock in idle:
                sock.close()
