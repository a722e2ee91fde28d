"""The ``imagegate`` command as a user runs it, on a fresh data dir each time."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from imagegate.cli.main import main
from imagegate.cli.serve import bootstrap
from imagegate.db import migrate
from imagegate.db.engine import create_engine
from imagegate.db.keys import ApiKey, KeyStore
from imagegate.settings import load_settings


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # Away from the repo, so no ./imagegate.toml or outer IMAGEGATE_* setting leaks in.
    monkeypatch.chdir(tmp_path)
    for variable in [name for name in os.environ if name.startswith("IMAGEGATE_")]:
        monkeypatch.delenv(variable)
    monkeypatch.setenv("IMAGEGATE_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def authenticate(secret: str) -> ApiKey | None:
    async def run() -> ApiKey | None:
        engine = create_engine(load_settings().resolved_database_url)
        try:
            return await KeyStore(engine).authenticate(secret)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def create_key(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["keys", "create", *args]) == 0
    return capsys.readouterr().out.strip().splitlines()[-1]


def test_keys_create_prints_the_secret_last(capsys: pytest.CaptureFixture[str], data_dir: Path) -> None:
    assert main(["keys", "create", "--name", "ci", "--models", "gpt-image-2, demo"]) == 0
    out = capsys.readouterr().out
    secret = out.strip().splitlines()[-1]
    assert secret.startswith("sk-") and " " not in secret
    assert "ci" in out and "gpt-image-2, demo" in out
    assert (data_dir / "imagegate.db").is_file()

    key = authenticate(secret)
    assert key is not None and key.name == "ci" and key.models == ["gpt-image-2", "demo"]


def test_keys_list_shows_keys(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "list"]) == 0
    assert "No keys yet" in capsys.readouterr().out

    secret = create_key(capsys, "--name", "alice")
    create_key(capsys, "--name", "bob", "--models", "demo")
    key = authenticate(secret)
    assert key is not None

    assert main(["keys", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = ["ID", "NAME", "PREFIX", "MODELS", "GROUP", "QUOTA", "BALANCE", "CREATED", "REVOKED"]
    assert lines[0].split() == header
    assert lines[1].split()[:4] == [key.id, "alice", secret[:7] + "…", "*"]
    assert lines[1].split()[-1] == "-"
    bob = lines[2].split()
    assert (bob[1], bob[3]) == ("bob", "demo")
    assert all(secret not in line for line in lines)


def test_keys_revoke(capsys: pytest.CaptureFixture[str]) -> None:
    secret = create_key(capsys, "--name", "temp")
    key = authenticate(secret)
    assert key is not None

    assert main(["keys", "revoke", key.id]) == 0
    assert key.id in capsys.readouterr().out
    assert authenticate(secret) is None

    assert main(["keys", "list"]) == 0
    row = capsys.readouterr().out.splitlines()[1]
    assert row.startswith(key.id) and not row.endswith("-")

    assert main(["keys", "revoke", key.id]) == 1  # already revoked
    assert main(["keys", "revoke", "key_doesnotexist"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "key_doesnotexist" in captured.err


def test_db_upgrade(capsys: pytest.CaptureFixture[str], data_dir: Path) -> None:
    assert main(["db", "upgrade"]) == 0
    assert main(["db", "upgrade"]) == 0
    assert f"revision {migrate.head_revision()}" in capsys.readouterr().out
    assert (data_dir / "imagegate.db").is_file()


def test_config_option_picks_the_database(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("IMAGEGATE_DATA_DIR")
    config = tmp_path / "custom.toml"
    config.write_text(f'data_dir = "{(tmp_path / "elsewhere").as_posix()}"\n')

    assert main(["db", "upgrade", "--config", str(config)]) == 0
    assert (tmp_path / "elsewhere" / "imagegate.db").is_file()
    create_key(capsys, "--name", "x", "--config", str(config))
    assert main(["keys", "list", "--config", str(config)]) == 0
    assert " x " in capsys.readouterr().out

    assert main(["keys", "list", "--config", str(tmp_path / "missing.toml")]) == 2
    assert "missing.toml" in capsys.readouterr().err


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["keys"])
    assert exited.value.code == 2
    assert main(["keys", "create", "--name", "  "]) == 2
    assert "name" in capsys.readouterr().err


def test_the_installed_command_runs_as_a_process(data_dir: Path, tmp_path: Path) -> None:
    environment = {**os.environ, "IMAGEGATE_DATA_DIR": str(data_dir)}
    created = subprocess.run(
        [sys.executable, "-m", "imagegate.cli.main", "keys", "create", "--name", "proc"],
        capture_output=True,
        text=True,
        env=environment,
        cwd=tmp_path,
        timeout=60,
        check=True,
    )
    secret = created.stdout.strip().splitlines()[-1]
    assert secret.startswith("sk-")
    assert authenticate(secret) is not None


def test_serve_creates_a_first_key_only_when_needed(data_dir: Path) -> None:
    secret = bootstrap(load_settings())
    assert secret is not None and authenticate(secret) is not None
    assert bootstrap(load_settings()) is None  # an active key exists now

    fresh = load_settings(data_dir=data_dir / "other", admin_key="sk-admin")
    assert bootstrap(fresh) is None  # the admin key is enough to get in


def test_serve_passes_options_to_uvicorn(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from imagegate.server import run

    calls: list[tuple[Any, ...]] = []
    monkeypatch.setitem(run.RUNNERS, "uvicorn", lambda *args: calls.append(args) or 0)
    for variable in ("IMAGEGATE_HOST", "IMAGEGATE_PORT"):
        monkeypatch.setenv(variable, "placeholder")  # so the values serve exports are undone later

    assert main(["serve", "--host", "0.0.0.0", "--port", "9123", "--workers", "3"]) == 0

    ((app, settings, limits, workers),) = calls
    assert app == "imagegate.cli.serve:served_app"
    config = run.uvicorn_config(app, settings, limits, workers)
    assert config.factory is True
    assert (config.host, config.port, config.workers) == ("0.0.0.0", 9123, 3)
    assert config.proxy_headers is False  # forwarded headers: IMAGEGATE_TRUSTED_PROXIES only
    assert config.timeout_graceful_shutdown == 30
    assert os.environ["IMAGEGATE_HOST"] == "0.0.0.0" and os.environ["IMAGEGATE_PORT"] == "9123"
    secret = capsys.readouterr().out.split("shown only this once:")[1].split()[0]
    assert authenticate(secret) is not None
