"""Default ``response_format`` of keys and groups (SPEC §2, §9b): key > group > config."""

from __future__ import annotations

from typing import Any

from tests.admin.helpers import admin
from tests.conftest import GatewayFactory, LiveGateway


def returned_format(gateway: LiveGateway, secret: str, **options: Any) -> str:
    """Which of url / b64_json a request that does not name a format (unless given) gets."""
    image = gateway.client(api_key=secret).images.generate(model="demo", prompt="a kite", **options).data[0]
    assert (image.url is None) != (image.b64_json is None), image
    return "url" if image.url is not None else "b64_json"


def test_keys_and_groups_store_show_and_clear_the_field(gateway: LiveGateway) -> None:
    with admin(gateway) as client:
        group = client.post("/groups", json={"name": "webui", "response_format": "b64_json"})
        assert group.status_code == 201, group.text
        assert group.json()["response_format"] == "b64_json"
        assert client.get("/groups/webui").json()["response_format"] == "b64_json"
        assert client.post("/groups", json={"name": "plain"}).json()["response_format"] is None

        key = client.post("/keys", json={"name": "k", "group": "webui", "response_format": "url"})
        assert key.status_code == 201, key.text
        key_id = key.json()["id"]
        assert key.json()["response_format"] == "url"
        assert client.get(f"/keys/{key_id}").json()["response_format"] == "url"
        listed = {k["id"]: k for k in client.get("/keys").json()["data"]}
        assert listed[key_id]["response_format"] == "url"

        assert client.patch(f"/keys/{key_id}", json={"name": "k2"}).json()["response_format"] == "url"
        assert (
            client.patch(f"/keys/{key_id}", json={"response_format": None}).json()["response_format"] is None
        )
        assert client.patch("/groups/webui", json={"response_format": None}).json()["response_format"] is None

        for path, method in (("/keys", client.post), ("/groups", client.post)):
            refused = method(path, json={"name": "bad", "response_format": "png"})
            assert refused.status_code == 400, refused.text
            assert refused.json()["error"]["param"] == "response_format"
        refused = client.patch(f"/keys/{key_id}", json={"response_format": "jpeg"})
        assert (refused.status_code, refused.json()["error"]["param"]) == (400, "response_format")


def test_the_key_beats_the_group_which_beats_the_config(gateway: LiveGateway) -> None:
    with admin(gateway) as client:
        client.post("/groups", json={"name": "webui", "response_format": "b64_json"})
        in_group = client.post("/keys", json={"name": "member", "group": "webui"}).json()
        own = client.post("/keys", json={"name": "own", "group": "webui", "response_format": "url"}).json()
        alone = client.post("/keys", json={"name": "alone"}).json()

        assert returned_format(gateway, in_group["key"]) == "b64_json"  # the group's
        assert returned_format(gateway, own["key"]) == "url"  # the key's own
        assert returned_format(gateway, alone["key"]) == "url"  # the config's
        # A request that names a format always gets it.
        assert returned_format(gateway, in_group["key"], response_format="url") == "url"
        assert returned_format(gateway, alone["key"], response_format="b64_json") == "b64_json"

        # Changes apply at once: the key falls back to its group, the group to the config.
        client.patch(f"/keys/{own['id']}", json={"response_format": None})
        assert returned_format(gateway, own["key"]) == "b64_json"
        client.patch("/groups/webui", json={"response_format": None})
        assert returned_format(gateway, in_group["key"]) == "url"
        client.patch(f"/keys/{alone['id']}", json={"response_format": "b64_json"})
        assert returned_format(gateway, alone["key"]) == "b64_json"


def test_the_config_default_applies_when_neither_says(make_gateway: GatewayFactory) -> None:
    gateway = make_gateway(response_format="b64_json")
    with admin(gateway) as client:
        plain = client.post("/keys", json={"name": "plain"}).json()
        url_key = client.post("/keys", json={"name": "links", "response_format": "url"}).json()

    assert returned_format(gateway, plain["key"]) == "b64_json"
    assert returned_format(gateway, url_key["key"]) == "url"
