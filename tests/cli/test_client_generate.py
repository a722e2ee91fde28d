"""``imagegate generate`` against a live gateway with the demo provider: files saved, progress, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.client_run import run_cli
from tests.conftest import ADMIN_KEY, LiveGateway, free_port
from tests.fakes.openai_upstream import FakeOpenAIUpstream


def test_generate_saves_the_image_and_the_raw_response(
    gateway: LiveGateway, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = ["generate", "a lighthouse at dusk", "-m", "demo", "-s", "1024x640", "-f", "webp", "-n", "2"]
    argv += ["-o", str(tmp_path / "out")]
    run = run_cli(capsys, monkeypatch, argv, base_url=gateway.url, api_key=ADMIN_KEY)

    assert run.status == 0, run.stderr
    raw_path, *image_paths = run.paths
    request_id = raw_path.stem
    assert request_id.startswith("req_") and raw_path.parent == tmp_path / "out"
    assert [path.name for path in image_paths] == [f"{request_id}-1.webp", f"{request_id}-2.webp"]
    images = run.saved_images()
    assert [(image.format, image.size) for image in images] == [("WEBP", (1024, 640))] * 2
    body = run.saved_json()  # exactly what the gateway sent: hosted URLs, which the CLI downloaded
    assert body["size"] == "1024x640" and body["output_format"] == "webp"
    assert all(item["url"].startswith(gateway.url) for item in body["data"])
    assert "done" in run.stderr


def test_streaming_shows_each_partial_and_saves_the_final_image(
    gateway: LiveGateway, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = ["generate", "a red kite", "-m", "demo", "-s", "1024x640", "--partials", "2"]
    argv += ["-o", str(tmp_path / "out")]
    run = run_cli(capsys, monkeypatch, argv, base_url=gateway.url, api_key=ADMIN_KEY)

    assert run.status == 0, run.stderr
    assert "partial preview 1 received" in run.stderr
    assert "partial preview 2 received" in run.stderr
    [image] = run.saved_images()
    assert (image.format, image.size) == ("PNG", (1024, 640))
    events = run.saved_json()  # a stream's raw response: its events, in order
    assert [event["type"] for event in events] == [
        "image_generation.partial_image",
        "image_generation.partial_image",
        "image_generation.completed",
    ]
    assert run.paths[1].name == f"{run.paths[0].stem}-1.png"


def test_a_bad_size_exits_non_zero_with_the_gateways_message(
    gateway: LiveGateway, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = ["generate", "a cat", "-m", "demo", "-s", "13x13", "-o", str(tmp_path / "out")]
    run = run_cli(capsys, monkeypatch, argv, base_url=gateway.url, api_key=ADMIN_KEY)

    assert run.status == 1
    assert "Invalid size '13x13' for model 'demo'" in run.stderr
    assert "HTTP 400, request req_" in run.stderr
    assert run.stdout == "" and not (tmp_path / "out").exists()


def test_a_bad_size_while_streaming_is_the_gateways_message_too(
    gateway: LiveGateway, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = ["generate", "a cat", "-m", "demo", "-s", "13x13", "--partials", "1", "-o", str(tmp_path / "out")]
    run = run_cli(capsys, monkeypatch, argv, base_url=gateway.url, api_key=ADMIN_KEY)

    assert run.status == 1
    assert "Invalid size '13x13'" in run.stderr


def test_a_wrong_key_is_the_gateways_401(
    gateway: LiveGateway, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = ["generate", "a cat", "-m", "demo", "-o", str(tmp_path / "out")]
    run = run_cli(capsys, monkeypatch, argv, base_url=gateway.url, api_key="sk-not-a-key")

    assert run.status == 1
    assert "HTTP 401" in run.stderr


@pytest.mark.parametrize(
    ("base_url", "api_key", "message"),
    [
        ("http://127.0.0.1:9", None, "no API key: pass --api-key or set IMAGEGATE_API_KEY"),
        (None, "sk-x", "no gateway URL: pass --base-url or set IMAGEGATE_BASE_URL"),
        ("127.0.0.1:8080", "sk-x", "the gateway URL must be http(s)://"),
    ],
)
def test_a_missing_key_or_url_is_said_plainly(
    base_url: str | None,
    api_key: str | None,
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run = run_cli(capsys, monkeypatch, ["generate", "a cat"], base_url=base_url, api_key=api_key)

    assert run.status == 2
    assert message in run.stderr


def test_an_unreachable_gateway_is_said_plainly(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    run = run_cli(capsys, monkeypatch, ["generate", "a cat", "-m", "demo"], base_url=url, api_key="sk-x")

    assert run.status == 1
    assert f"cannot reach the gateway at {url}/v1" in run.stderr


@pytest.mark.slow  # a fresh interpreter importing the SDK and the gateway's modules
def test_the_command_line_entry_point_and_the_settings_order(gateway: LiveGateway, tmp_path: Path) -> None:
    """As a shell runs it: flags win over IMAGEGATE_*, which win over OPENAI_* (here all wrong but one)."""
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
        "OPENAI_API_KEY": "sk-wrong-openai",
        "IMAGEGATE_BASE_URL": f"{gateway.url}/v1",
        "IMAGEGATE_API_KEY": "sk-wrong-imagegate",
    }
    argv = ["generate", "城市夜景", "-m", "demo", "-s", "1024x640", "-o", str(tmp_path / "out")]
    command = [sys.executable, "-m", "imagegate.cli.main", *argv, "--api-key", ADMIN_KEY]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)

    assert done.returncode == 0, done.stderr
    raw_path, image_path = (Path(line) for line in done.stdout.splitlines())
    assert json.loads(raw_path.read_text())["data"][0]["revised_prompt"] == "城市夜景"
    assert image_path.read_bytes().startswith(b"\x89PNG")


def test_openai_variables_are_the_last_resort(
    gateway: LiveGateway, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = ["generate", "a cat", "-m", "demo", "-s", "1024x640", "-o", str(tmp_path / "out")]
    for name in ("IMAGEGATE_BASE_URL", "IMAGEGATE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", f"{gateway.url}/v1")
    monkeypatch.setenv("OPENAI_API_KEY", ADMIN_KEY)
    from imagegate.cli.main import main

    capsys.readouterr()
    assert main(argv) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2


def test_an_error_in_the_middle_of_a_stream_is_the_upstreams_message(
    upstream_gateway: LiveGateway,
    upstream: FakeOpenAIUpstream,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    upstream.stream_error = {
        "message": "Your request was rejected by the safety system.",
        "type": "invalid_request_error",
        "param": None,
        "code": "moderation_blocked",
    }
    argv = ["generate", "something", "-m", "gpt-image-2", "--partials", "1", "-o", str(tmp_path / "out")]
    run = run_cli(capsys, monkeypatch, argv, base_url=upstream_gateway.url, api_key=ADMIN_KEY)

    assert run.status == 1
    assert "partial preview 1 received" in run.stderr
    assert "Your request was rejected by the safety system." in run.stderr
    assert not (tmp_path / "out").exists()
