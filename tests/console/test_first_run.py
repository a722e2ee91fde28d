"""What a new user meets first: the admin key `serve` makes, `keys create --admin`, the CLI's
words about a group's models, and demo images that draw Chinese and honour transparency."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import requests
from PIL import Image

from imagegate.cli.main import main
from imagegate.cli.serve import bootstrap, first_key_banner
from imagegate.providers import demo_render
from imagegate.settings import load_settings
from tests.conftest import LiveGateway
from tests.console.helpers import make_key, sign_in


def test_the_first_key_serve_creates_is_an_admin_key_and_the_banner_names_the_console(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "data")
    secret = bootstrap(settings)
    assert secret is not None
    banner = first_key_banner(secret, "http://127.0.0.1:8080")
    assert "http://127.0.0.1:8080/console" in banner and "admin key" in banner

    import asyncio

    from imagegate.db.engine import create_engine
    from imagegate.db.keys import KeyStore

    async def read() -> bool:
        engine = create_engine(settings.resolved_database_url)
        try:
            key = await KeyStore(engine).authenticate(secret)
        finally:
            await engine.dispose()
        assert key is not None
        return key.admin

    assert asyncio.run(read()) is True


def test_admin_keys_use_the_admin_api_and_others_do_not(gateway: LiveGateway) -> None:
    admin = make_key(gateway, "ops", admin=True)
    plain = make_key(gateway, "app")
    listed = requests.get(f"{gateway.url}/admin/keys", headers={"Authorization": f"Bearer {admin}"})
    assert listed.status_code == 200
    assert {k["name"]: k["admin"] for k in listed.json()["data"]} == {"ops": True, "app": False}
    refused = requests.get(f"{gateway.url}/admin/keys", headers={"Authorization": f"Bearer {plain}"})
    assert refused.status_code == 403
    made = requests.post(
        f"{gateway.url}/admin/keys",
        json={"name": "second", "admin": True},
        headers={"Authorization": f"Bearer {admin}"},
    )
    assert made.status_code == 201 and made.json()["admin"] is True
    assert requests.get(
        f"{gateway.url}/admin/groups", headers={"Authorization": f"Bearer {made.json()['key']}"}
    ).ok


def test_keys_create_admin_and_group_models(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMAGEGATE_DATA_DIR", str(tmp_path / "data"))
    assert main(["keys", "create", "--name", "ops", "--admin"]) == 0
    assert "Created admin key" in capsys.readouterr().out
    assert main(["groups", "create", "team-a", "--models", "demo"]) == 0
    capsys.readouterr()
    assert main(["keys", "create", "--name", "ci", "--group", "team-a"]) == 0
    out = capsys.readouterr().out
    assert "all models" not in out
    assert "for models demo" in out


def test_demo_draws_chinese_prompts_with_glyphs_not_boxes() -> None:
    font = demo_render.caption_font(40)
    # A font without CJK draws every ideograph as the same box; a real one draws each its own way.
    masks = [bytes(font.getmask(ch)) for ch in "晨雾山"]
    assert len(set(masks)) == 3
    assert font.getbbox("晨")[2] > 20


def test_a_transparent_demo_edit_has_clear_corners() -> None:
    source = Image.new("RGB", (256, 256), (200, 30, 30))
    buffer = io.BytesIO()
    source.save(buffer, "PNG")
    edited = demo_render.render_edit("make it pop", 0, (256, 256), [buffer.getvalue()], None, True)
    assert edited.mode == "RGBA"
    assert edited.getpixel((0, 0))[3] == 0
    assert edited.getpixel((128, 128))[3] == 255
    opaque = demo_render.render_edit("make it pop", 0, (256, 256), [buffer.getvalue()], None, False)
    assert opaque.mode == "RGB"


def test_a_client_key_signed_in_to_the_console_is_refused_admin_pages(gateway: LiveGateway) -> None:
    session = sign_in(gateway, make_key(gateway, "app"))
    assert session.get(f"{gateway.url}/console/keys").status_code == 403


def test_admin_docs_load_nothing_from_elsewhere(gateway: LiveGateway) -> None:
    page = requests.get(f"{gateway.url}/admin/docs")
    assert page.status_code == 200 and "POST /admin/keys" in page.text
    assert "cdn" not in page.text.lower() and "<script" not in page.text


def test_demo_images_cost_nothing_by_default(gateway: LiveGateway) -> None:
    secret = make_key(gateway, "limited", quota_usd="0.000001")
    client = gateway.client(api_key=secret)
    for _ in range(3):
        assert client.images.generate(model="demo", prompt="免费的演示图片").data
    keys = requests.get(f"{gateway.url}/admin/keys", headers={"Authorization": "Bearer sk-test-admin-key"})
    limited = next(k for k in keys.json()["data"] if k["name"] == "limited")
    assert limited["balance_usd"] == "0.000001"
