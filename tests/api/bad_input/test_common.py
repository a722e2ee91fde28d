"""Bad input every endpoint shares: auth and permission, the body-size limit, unknown paths and methods."""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from typing import Any

import openai
import pytest
import requests

from tests.api.bad_input.helpers import (
    MB,
    assert_error,
    auth,
    edit_multipart,
    gen_body,
    generate,
    multipart,
    png,
)
from tests.conftest import ADMIN_KEY, LiveGateway

# -- auth and permission ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer sk-wrong-key"},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer   "},
        {"Authorization": f"Basic {ADMIN_KEY}"},
        {"Authorization": ADMIN_KEY},
    ],
    ids=["none", "wrong", "bearer-no-token", "bearer-blank", "basic", "no-scheme"],
)
@pytest.mark.parametrize("path", ["/v1/images/generations", "/v1/images/edits"])
def test_bad_authorization_is_401(gw: LiveGateway, headers: dict[str, str], path: str) -> None:
    resp = requests.post(f"{gw.url}{path}", json=gen_body(), headers=headers, timeout=30)

    error = assert_error(resp, 401, param=None)
    assert error["code"] in ("invalid_api_key", "missing_api_key"), error
    assert "key" in error["message"].lower() or "authorization" in error["message"].lower(), error


def test_bad_key_through_the_sdk(gw: LiveGateway) -> None:
    with pytest.raises(openai.AuthenticationError) as caught:
        gw.client(api_key="sk-wrong").images.generate(model="demo", prompt="a cat")

    assert_error(caught.value.response, 401, code="invalid_api_key")  # type: ignore[arg-type]


def test_key_limited_to_other_models_is_403(gw: LiveGateway) -> None:
    key = gw.create_key(name="limited", models=["other"])

    assert_error(generate(gw, gen_body(), key=key), 403, param="model", contains=("demo",))
    resp = edit_multipart(gw, [("image", ("a.png", png()))], key=key)
    assert_error(resp, 403, param="model")
    with pytest.raises(openai.PermissionDeniedError):
        gw.client(api_key=key).images.generate(model="demo", prompt="a cat")


# -- body-size limit (a gateway with small limits) --------------------------------------------------


def _two_mb_chunks() -> Iterator[bytes]:
    for _ in range(32):
        yield b"x" * 65536


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_oversized_json_body_is_413(tight: LiveGateway, chunked: bool) -> None:
    data: Any = _two_mb_chunks() if chunked else b"x" * (2 * MB)
    resp = requests.post(
        f"{tight.url}/v1/images/generations",
        data=data,
        headers={**auth(), "Content-Type": "application/json"},
        timeout=30,
    )

    assert_error(resp, 413, code="request_too_large", contains=("1 MB",))


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_oversized_multipart_body_is_413(tight: LiveGateway, chunked: bool) -> None:
    head = multipart([("prompt", b"hi", None), ("model", b"demo", None)])
    head += b'--xyz\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n' + png()
    tail = b"\r\n--xyz--\r\n"

    def stream() -> Iterator[bytes]:
        yield head
        yield from _two_mb_chunks()
        yield tail

    data: Any = stream() if chunked else b"".join(stream())
    resp = requests.post(
        f"{tight.url}/v1/images/edits",
        data=data,
        headers={**auth(), "Content-Type": "multipart/form-data; boundary=xyz"},
        timeout=30,
    )

    assert_error(resp, 413, code="request_too_large", contains=("1 MB",))


def test_oversized_body_is_checked_before_auth_is_needed(tight: LiveGateway) -> None:
    """A declared Content-Length over the limit is refused before the key is even looked at."""
    resp = requests.post(
        f"{tight.url}/v1/images/generations",
        data=b"x" * (2 * MB),
        headers={"Content-Type": "application/json"},
        timeout=30,
    )

    assert_error(resp, 413, code="request_too_large", contains=("1 MB",))


@pytest.mark.parametrize("path", ["/v1/images/edits", "/v1/chat/completions", "/admin/keys"])
@pytest.mark.parametrize("key", [None, "sk-wrong"], ids=["no-key", "wrong-key"])
def test_every_endpoint_checks_a_declared_size_before_auth(
    tight: LiveGateway, path: str, key: str | None
) -> None:
    headers = {"Content-Type": "application/json"} | (auth(key) if key else {})

    resp = requests.post(f"{tight.url}{path}", data=b"x" * (2 * MB), headers=headers, timeout=30)

    assert_error(resp, 413, code="request_too_large")


def test_an_undeclared_body_is_not_read_for_a_client_without_a_key(tight: LiveGateway) -> None:
    """Chunked: the size is unknown until read, and nothing is read for a client without a key."""
    resp = requests.post(
        f"{tight.url}/v1/images/generations",
        data=_two_mb_chunks(),
        headers={"Content-Type": "application/json"},
        timeout=30,
    )

    assert_error(resp, 401)


# -- paths ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/files/../../etc/passwd",
        "/files/..%2F..%2Fetc%2Fpasswd",
        "/files/20261121/..%2F..%2F..%2Fetc%2Fpasswd",
        "/files/20261121/notahash.png",
        "/files/20261121/" + "0" * 64 + ".png",
        "/files/20261121/" + "0" * 64 + ".gif",
        "/files/2026/" + "0" * 64 + ".png",
        "/files/%2e%2e/imagegate.db",
    ],
)
def test_files_outside_the_store_are_404(gw: LiveGateway, path: str) -> None:
    """Sent raw (no client-side dot-segment cleanup) so the gateway sees the path as written."""
    conn = http.client.HTTPConnection("127.0.0.1", int(gw.url.rsplit(":", 1)[1]), timeout=30)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        status, headers = resp.status, resp.headers
    finally:
        conn.close()

    assert status == 404, body
    assert b"root:" not in body
    fake = requests.Response()
    fake.status_code, fake._content = status, body
    fake.headers.update(dict(headers.items()))
    assert_error(fake, 404)


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/nope"), ("POST", "/v1/images/variations"), ("GET", "/v1/images/generations/x")],
)
def test_unknown_path_is_404_envelope(gw: LiveGateway, method: str, path: str) -> None:
    resp = requests.request(method, f"{gw.url}{path}", headers=auth(), timeout=30)

    assert_error(resp, 404, contains=(path,))


def test_wrong_method_is_an_envelope(gw: LiveGateway) -> None:
    resp = requests.get(f"{gw.url}/v1/images/generations", headers=auth(), timeout=30)

    assert resp.status_code == 405
    assert_error(resp, 405, type_=resp.json()["error"]["type"])
