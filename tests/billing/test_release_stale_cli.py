"""``imagegate ledger release-stale``: the holds of dead processes, released by hand and printed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from imagegate.billing.leases import renew_lease
from imagegate.billing.ledger import Ledger
from imagegate.cli.main import main
from imagegate.db import migrate
from imagegate.db.keys import KeyStore
from tests.billing.accounts import money, with_engine


@pytest.fixture
def database_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)
    for variable in [name for name in os.environ if name.startswith("IMAGEGATE_")]:
        monkeypatch.delenv(variable)
    url = f"sqlite+aiosqlite:///{tmp_path / 'imagegate.db'}"
    monkeypatch.setenv("IMAGEGATE_DATABASE_URL", url)
    migrate.upgrade(url)
    return url


def test_release_stale_gives_back_dead_holds_and_leaves_live_ones(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async def crash(engine: AsyncEngine) -> tuple[str, str]:
        key, _ = await KeyStore(engine).create("k", quota_usd="1")
        dead, alive = Ledger(engine), Ledger(engine)
        await renew_lease(engine, dead.owner, -1)  # its lease has run out
        await renew_lease(engine, alive.owner, 60)
        await dead.hold(key.id, "req_dead", 40_000, model="gpt-image-2", endpoint="/v1/images/generations")
        await alive.hold(key.id, "req_alive", 10_000)
        return key.id, dead.owner

    key_id, owner = with_engine(database_url, crash)
    assert main(["ledger", "release-stale"]) == 0
    out = capsys.readouterr().out.splitlines()
    expected = f"released req_dead  key {key_id}  $0.040000  gpt-image-2  /v1/images/generations"
    assert out[0].startswith(expected)
    assert out[0].endswith(f"by {owner}")
    assert out[-1] == "1 stale hold(s) released, $0.040000 given back"
    assert money(database_url, key_id) == (990_000, 990_000)
    assert main(["ledger", "release-stale"]) == 0
    assert capsys.readouterr().out.splitlines() == ["0 stale hold(s) released, $0.000000 given back"]
