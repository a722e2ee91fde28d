"""Every admin route needs the admin key; the admin API documents itself at /admin/docs."""

from __future__ import annotations

import httpx
import pytest

from tests.admin.helpers import admin
from tests.conftest import LiveGateway

ROUTES = [
    ("GET", "/groups"),
    ("POST", "/groups"),
    ("PATCH", "/groups/x"),
    ("DELETE", "/groups/x"),
    ("GET", "/keys"),
    ("POST", "/keys"),
    ("GET", "/keys/key_x"),
    ("PATCH", "/keys/key_x"),
    ("DELETE", "/keys/key_x"),
    ("POST", "/channels"),
    ("GET", "/channels/x"),
    ("PATCH", "/channels/x"),
    ("DELETE", "/channels/x"),
    ("GET", "/prices"),
    ("PUT", "/prices/demo"),
    ("DELETE", "/prices/demo"),
    ("GET", "/logs"),
    ("GET", "/logs/req_x"),
    ("GET", "/usage"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_no_key_is_401_and_a_client_key_is_403(gateway: LiveGateway, method: str, path: str) -> None:
    with admin(gateway, key=None) as client:
        response = client.request(method, path, json={})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "missing_api_key"

    with admin(gateway, key="sk-wrong") as client:
        assert client.request(method, path, json={}).status_code == 401

    secret = gateway.create_key("client")
    with admin(gateway, key=secret) as client:
        response = client.request(method, path, json={})
    assert response.status_code == 403
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", "admin_key_required")


def test_the_openapi_document_covers_the_admin_routes_only(gateway: LiveGateway) -> None:
    document = httpx.get(f"{gateway.url}/admin/openapi.json").json()
    paths = set(document["paths"])
    assert {"/admin/keys", "/admin/keys/{key_id}", "/admin/groups", "/admin/logs", "/admin/usage"} <= paths
    assert {"/admin/prices/{model}", "/admin/channels/{name}", "/admin/logs/{request_id}"} <= paths
    assert all(path.startswith("/admin/") for path in paths)
    schemas = document["components"]["schemas"]
    assert {"KeyCreate", "KeyPublic", "KeyCreated", "KeyUpdate", "GroupCreate", "LogPublic"} <= set(schemas)
    assert "key" in schemas["KeyCreated"]["properties"]
    assert "key" not in schemas["KeyPublic"]["properties"]
    page = httpx.get(f"{gateway.url}/admin/docs")
    assert page.status_code == 200 and "/admin/openapi.json" in page.text
