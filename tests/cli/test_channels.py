"""``imagegate channels list|test`` against a fake upstream, as an operator runs them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagegate.cli.main import main
from tests.fakes.openai_upstream import FakeOpenAIUpstream


@pytest.fixture(autouse=True)
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for variable in [name for name in os.environ if name.startswith("IMAGEGATE_")]:
        monkeypatch.delenv(variable)
    monkeypatch.setenv("IMAGEGATE_DATA_DIR", str(tmp_path / "data"))


@pytest.fixture
def upstream() -> Iterator[FakeOpenAIUpstream]:
    with FakeOpenAIUpstream() as fake:
        yield fake


@pytest.fixture
def config(tmp_path: Path, upstream: FakeOpenAIUpstream) -> Path:
    path = tmp_path / "imagegate.toml"
    path.write_text(
        f"""
[[channels]]
name = "main"
provider = "openai"
base_url = "{upstream.base_url}"
api_key = "{upstream.api_key}"
models = ["gpt-image-1", "dall-e-2"]
model_map = {{ "dall-e-2" = "dall-e-2-legacy" }}
priority = 0
weight = 2
max_concurrency = 3
timeout_s = 20
"""
    )
    return path


def test_channels_test_sends_a_tiny_real_request(
    config: Path, upstream: FakeOpenAIUpstream, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["channels", "test", "main", "--config", str(config)]) == 0

    out = capsys.readouterr().out
    assert "channel main, model gpt-image-1: OK in" in out and "(1 image)" in out
    body = upstream.requests[-1].body
    assert body["model"] == "gpt-image-1" and body["quality"] == "low" and body["n"] == 1


def test_channels_test_uses_the_cheapest_size_of_the_chosen_model(
    config: Path, upstream: FakeOpenAIUpstream, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["channels", "test", "main", "--model", "dall-e-2", "--config", str(config)]) == 0

    assert "(upstream dall-e-2-legacy)" in capsys.readouterr().out
    body = upstream.requests[-1].body
    assert body["size"] == "256x256" and body["model"] == "dall-e-2-legacy" and "quality" not in body


def test_channels_test_reports_an_upstream_failure(
    config: Path, upstream: FakeOpenAIUpstream, capsys: pytest.CaptureFixture[str]
) -> None:
    upstream.fail_status = 401

    assert main(["channels", "test", "main", "--config", str(config)]) == 1

    out = capsys.readouterr().out
    assert "ERROR after" in out and "upstream_auth_failed" in out
    assert upstream.api_key not in out


def test_channels_test_of_an_unknown_channel_or_model_is_a_usage_error(
    config: Path, upstream: FakeOpenAIUpstream, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["channels", "test", "nope", "--config", str(config)]) == 2
    assert "No channel named 'nope'" in capsys.readouterr().err
    assert main(["channels", "test", "main", "--model", "demo", "--config", str(config)]) == 2
    assert "does not serve the model 'demo'" in capsys.readouterr().err
    assert upstream.requests == []


def test_channels_list_shows_the_configured_channels(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["channels", "list", "--config", str(config)]) == 0

    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "NAME",
        "PROVIDER",
        "PRIORITY",
        "WEIGHT",
        "MAX_CONCURRENCY",
        "TIMEOUT_S",
        "MODELS",
    ]
    assert lines[1].split() == ["main", "openai", "0", "2", "3", "20", "gpt-image-1,dall-e-2"]
    assert lines[2].split()[:2] == ["demo", "demo"]
