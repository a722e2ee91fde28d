"""The client's async commands against the gateway's real task endpoints (SPEC §9, §10)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.client_run import run_cli
from tests.conftest import ADMIN_KEY, LiveGateway, image_bytes


def test_generate_async_shows_progress_and_ends_with_the_file(
    gateway: LiveGateway, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = ["generate", "一座灯塔 a lighthouse", "-m", "demo", "-s", "1024x640", "--partials", "2", "--async"]
    argv += ["-o", str(tmp_path / "out")]
    run = run_cli(capsys, monkeypatch, argv, base_url=gateway.url, api_key=ADMIN_KEY)

    assert run.status == 0, run.stderr
    assert "partial preview 2 received" in run.stderr
    [image] = run.saved_images()
    assert (image.format, image.size) == ("PNG", (1024, 640))
    task_id = run.paths[0].stem
    assert task_id.startswith("task_")
    assert run.saved_json()["size"] == "1024x640"  # the task's result: the sync body

    shown = run_cli(capsys, monkeypatch, ["tasks", "show", task_id], base_url=gateway.url, api_key=ADMIN_KEY)
    assert shown.status == 0 and '"completed"' in shown.stdout
    listed = run_cli(capsys, monkeypatch, ["tasks", "list"], base_url=gateway.url, api_key=ADMIN_KEY)
    assert listed.status == 0 and task_id in listed.stdout


def test_edit_async_with_a_mask_saves_the_edited_image(
    gateway: LiveGateway, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    photo, mask = tmp_path / "photo.png", tmp_path / "mask.png"
    photo.write_bytes(image_bytes((512, 512)))
    mask.write_bytes(image_bytes((512, 512), mode="RGBA", color=(0, 0, 0, 0)))
    argv = ["edit", "make it blue", str(photo), "--mask", str(mask), "-m", "demo", "--async"]
    argv += ["-o", str(tmp_path / "out")]
    run = run_cli(capsys, monkeypatch, argv, base_url=gateway.url, api_key=ADMIN_KEY)

    assert run.status == 0, run.stderr
    [image] = run.saved_images()
    assert image.format == "PNG"


def test_another_keys_task_is_not_found(
    gateway: LiveGateway, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = ["generate", "mine", "-m", "demo", "--async", "-o", str(tmp_path / "out")]
    mine = run_cli(capsys, monkeypatch, argv, base_url=gateway.url, api_key=ADMIN_KEY)
    assert mine.status == 0, mine.stderr
    task_id = mine.paths[0].stem
    other = gateway.create_key("other")
    shown = run_cli(capsys, monkeypatch, ["tasks", "show", task_id], base_url=gateway.url, api_key=other)
    assert shown.status != 0
    assert "404" in shown.stderr
