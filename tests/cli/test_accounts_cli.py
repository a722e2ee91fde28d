"""``imagegate keys create`` with limits, ``imagegate groups …`` and ``imagegate usage``."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from imagegate.cli.keys import parse_expiry
from imagegate.cli.main import main
from imagegate.db.engine import create_engine
from imagegate.db.key_values import ApiKey
from imagegate.db.keys import KeyStore
from imagegate.db.request_logs import RequestLogWriter
from imagegate.domain import new_request_id
from imagegate.observability import RequestRecord
from imagegate.settings import load_settings


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for variable in [name for name in os.environ if name.startswith("IMAGEGATE_")]:
        monkeypatch.delenv(variable)
    monkeypatch.setenv("IMAGEGATE_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(list(args)) == 0
    return capsys.readouterr().out


def authenticate(secret: str) -> ApiKey | None:
    async def go() -> ApiKey | None:
        engine = create_engine(load_settings().resolved_database_url)
        try:
            return await KeyStore(engine).authenticate(secret)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def test_groups_create_list_update_delete(capsys: pytest.CaptureFixture[str]) -> None:
    assert "No groups yet" in run(capsys, "groups", "list")
    out = run(
        capsys,
        "groups",
        "create",
        "team-a",
        "--multiplier",
        "0.8",
        "--models",
        "demo,gpt-image-1",
        "--rpm",
        "60",
    )
    assert "Created group grp_" in out
    lines = run(capsys, "groups", "list").splitlines()
    assert lines[0].split() == ["ID", "NAME", "MULTIPLIER", "MODELS", "RPM"]
    assert lines[1].split()[1:] == ["team-a", "0.8", "demo,gpt-image-1", "60"]

    out = run(capsys, "groups", "update", "team-a", "--models", "*", "--rpm", "0", "--name", "team-b")
    assert run(capsys, "groups", "list").splitlines()[1].split()[1:] == ["team-b", "0.8", "*", "-"]
    assert "Updated group" in out

    assert main(["groups", "create", "team-b"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["groups", "update", "nope", "--rpm", "1"]) == 1
    assert main(["groups", "update", "team-b"]) == 2
    capsys.readouterr()

    run(capsys, "keys", "create", "--name", "member", "--group", "team-b")
    assert main(["groups", "delete", "team-b"]) == 2
    assert "still has keys" in capsys.readouterr().err


def test_keys_create_with_every_limit(capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "groups", "create", "team")
    out = run(
        capsys,
        "keys", "create", "--name", "ci", "--group", "team", "--quota-usd", "25.5",
        "--models", "demo, gpt-image-1", "--rpm", "30", "--expires", "2027-01-01",
    )  # fmt: skip
    secret = out.strip().splitlines()[-1]
    assert secret.startswith("sk-")
    key = authenticate(secret)
    assert key is not None and key.group is not None
    assert (key.name, key.group.name, key.models, key.rpm) == ("ci", "team", ["demo", "gpt-image-1"], 30)
    assert (key.quota_micros, key.balance_micros) == (25_500_000, 25_500_000)
    assert key.expires_at == datetime(2027, 1, 1, tzinfo=UTC)
    assert "group team" in out and "quota $25.500000" in out

    lines = run(capsys, "keys", "list").splitlines()
    assert lines[0].split() == [
        "ID",
        "NAME",
        "PREFIX",
        "MODELS",
        "GROUP",
        "QUOTA",
        "BALANCE",
        "CREATED",
        "REVOKED",
    ]
    cells = lines[1].split()
    assert cells[4:7] == ["team", "25.500000", "25.500000"]
    unlimited = run(capsys, "keys", "create", "--name", "free").strip().splitlines()[-1]
    assert authenticate(unlimited) is not None
    assert run(capsys, "keys", "list").splitlines()[2].split()[4:7] == ["-", "unlimited", "unlimited"]


def test_keys_create_refuses_bad_limits(capsys: pytest.CaptureFixture[str]) -> None:
    for args in (["--group", "missing"], ["--quota-usd", "lots"], ["--rpm", "0"], ["--expires", "soon"]):
        assert main(["keys", "create", "--name", "x", *args]) == 2, args
        assert "imagegate: error:" in capsys.readouterr().err


def test_expiry_forms() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_expiry("30d", now) == now + timedelta(days=30)
    assert parse_expiry("12h", now) == now + timedelta(hours=12)
    assert parse_expiry("2027-01-01") == datetime(2027, 1, 1, tzinfo=UTC)
    assert parse_expiry("2027-01-01T10:00:00+02:00") == datetime(2027, 1, 1, 8, tzinfo=UTC)


def test_usage_prints_a_per_key_and_model_summary(capsys: pytest.CaptureFixture[str]) -> None:
    assert "No requests logged" in run(capsys, "usage")  # also creates the database

    async def log() -> None:
        engine = create_engine(load_settings().resolved_database_url)
        writer = RequestLogWriter(engine)
        now = datetime.now(UTC)
        for key, model, days_ago, cost, status in (
            ("key_a", "demo", 0, "0.5", 200),
            ("key_a", "demo", 3, "0.25", 200),
            ("key_a", "gpt-image-1", 0, "1", 200),
            ("key_b", "demo", 0, None, 502),
            ("key_b", "demo", 30, "9", 200),
        ):
            record = RequestRecord(
                request_id=new_request_id(), method="POST", endpoint="/v1/images/generations",
                key_id=key, model=model, status=status, n=2, cost_usd=cost, input_tokens=5, output_tokens=7,
            )  # fmt: skip
            writer.submit(record, (now - timedelta(days=days_ago)).timestamp())
        await writer.flush()
        await engine.dispose()

    asyncio.run(log())
    lines = run(capsys, "usage", "--since", "7d").splitlines()
    assert lines[0].split() == [
        "KEY", "MODEL", "REQUESTS", "ERRORS", "IMAGES", "INPUT_TOKENS", "OUTPUT_TOKENS", "COST_USD",
    ]  # fmt: skip
    assert lines[1].split() == ["key_a", "demo", "2", "0", "4", "10", "14", "0.750000"]
    assert lines[2].split() == ["key_a", "gpt-image-1", "1", "0", "2", "5", "7", "1.000000"]
    assert lines[3].split() == ["key_b", "demo", "1", "1", "0", "5", "7", "0.000000"]
    assert lines[4].split() == ["TOTAL", "4", "1", "6", "20", "28", "1.750000"]

    lines = run(capsys, "usage", "--key", "key_b").splitlines()
    assert lines[1].split() == ["key_b", "demo", "2", "1", "2", "10", "14", "9.000000"]


def test_default_response_formats_of_keys_and_groups(capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "groups", "create", "webui", "--response-format", "b64_json")
    out = run(capsys, "keys", "create", "--name", "own", "--group", "webui", "--response-format", "url")
    assert "response_format url" in out
    key = authenticate(out.strip().splitlines()[-1])
    assert key is not None and key.group is not None
    assert (key.response_format, key.group.response_format, key.effective_response_format) == (
        "url",
        "b64_json",
        "url",
    )
    inherits = authenticate(run(capsys, "keys", "create", "--name", "m", "--group", "webui").split()[-1])
    assert inherits is not None and inherits.effective_response_format == "b64_json"

    run(capsys, "groups", "update", "webui", "--response-format", "default")
    cleared = authenticate(run(capsys, "keys", "create", "--name", "n", "--group", "webui").split()[-1])
    assert cleared is not None and cleared.effective_response_format is None
    with pytest.raises(SystemExit) as refused:
        main(["keys", "create", "--name", "x", "--response-format", "png"])
    assert refused.value.code == 2 and "invalid choice: 'png'" in capsys.readouterr().err
