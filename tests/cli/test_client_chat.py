"""``imagegate chat`` on ``demo-chat``: each reply's images saved; a follow-up edits the last image."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from imagegate.cli.client.chat import reply_image_urls
from imagegate.providers.demo import input_image_tokens
from tests.cli.client_run import run_cli
from tests.conftest import ADMIN_KEY, LiveGateway


def test_two_turns_the_second_edits_the_first_image(
    gateway: LiveGateway, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    follow_up = "now make the sky purple"
    stdin = f"1024x640 'a harbour at dawn'\n\n{follow_up}\n"
    argv = ["chat", "-m", "demo-chat", "-o", str(tmp_path / "out")]
    run = run_cli(capsys, monkeypatch, argv, base_url=gateway.url, api_key=ADMIN_KEY, stdin=stdin)

    assert run.status == 0, run.stderr
    first_json, first_image, second_json, second_image = run.paths
    assert first_image.name == f"{first_json.stem}-1.png" and second_image.name == f"{second_json.stem}-1.png"
    assert first_json.stem != second_json.stem
    images = run.saved_images()
    assert [(image.format, image.size) for image in images] == [("PNG", (1024, 640))] * 2
    first, second = (json.loads(path.read_text()) for path in (first_json, second_json))
    assert first["usage"]["prompt_tokens"] == math.ceil(len("a harbour at dawn") / 4)
    # The conversation was re-sent, so the gateway edited the first reply's image: it billed it as input.
    assert second["usage"]["prompt_tokens"] == math.ceil(len(follow_up) / 4) + input_image_tokens(1024, 640)
    assert "![image](" in run.stderr  # each reply is shown


def test_a_failed_turn_is_reported_and_the_chat_goes_on(
    gateway: LiveGateway, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    stdin = "13x13 'too small'\n1024x640 'a lantern'\n"
    argv = ["chat", "-m", "demo-chat", "-o", str(tmp_path / "out")]
    run = run_cli(capsys, monkeypatch, argv, base_url=gateway.url, api_key=ADMIN_KEY, stdin=stdin)

    assert run.status == 1  # a turn failed
    assert "Invalid size '13x13'" in run.stderr
    [image] = run.saved_images()
    assert image.size == (1024, 640)


def test_reply_images_come_from_the_images_field_else_the_markdown() -> None:
    with_images = {
        "content": "![image](http://gw/files/a.png)",
        "images": [{"type": "image_url", "image_url": {"url": "http://gw/files/b.png"}}],
    }
    assert reply_image_urls(with_images) == ["http://gw/files/b.png"]
    markdown_only = {"content": "Here:\n\n![image](http://gw/files/a.png)\n![x](http://gw/files/c.webp)"}
    assert reply_image_urls(markdown_only) == ["http://gw/files/a.png", "http://gw/files/c.webp"]
    assert reply_image_urls({"content": "no picture"}) == []
