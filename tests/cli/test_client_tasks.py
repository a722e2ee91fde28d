"""``--async`` and ``imagegate tasks`` against a loopback fake of SPEC §10's endpoints (a contract test).

The fake answers as §10 says the gateway will; the same commands run against the real endpoints
once they exist.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.cli.client_run import run_cli
from tests.conftest import image_bytes
from tests.fakes.tasks_api import FakeTasksApi


@pytest.fixture
def api() -> Iterator[FakeTasksApi]:
    fake = FakeTasksApi()
    fake.start_in_thread()
    yield fake
    fake.stop()


def submit(api: FakeTasksApi, prompt: str, key: str | None = None) -> str:
    response = httpx.post(
        f"{api.url}/v1/images/generations/async",
        json={"model": "gpt-image-2", "prompt": prompt, "size": "1024x640"},
        headers={"Authorization": f"Bearer {key or api.api_key}"},
    )
    assert response.status_code == 202
    assert response.headers["Location"] == f"/v1/images/tasks/{response.json()['id']}"
    task_id: str = response.json()["id"]
    return task_id


def test_async_generate_follows_the_events_and_saves_the_result(
    api: FakeTasksApi, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = ["generate", "a 4K harbour", "-s", "1024x640", "--partials", "2", "--async", "-o", str(tmp_path)]
    run = run_cli(capsys, monkeypatch, argv, base_url=api.url, api_key=api.api_key)

    assert run.status == 0, run.stderr
    [task] = api.tasks.values()
    assert task.body == {
        "model": "gpt-image-2",
        "prompt": "a 4K harbour",
        "size": "1024x640",
        "partial_images": 2,
    }
    assert f"task {task.id} submitted (queued)" in run.stderr
    assert "partial preview 2 received" in run.stderr and api.event_requests == 1
    raw_path, image_path = run.paths
    assert (raw_path.name, image_path.name) == (f"{task.id}.json", f"{task.id}-1.png")
    assert run.saved_json() == task.result  # the raw response of a task is its result
    [image] = run.saved_images()
    assert (image.format, image.size) == ("PNG", (1024, 640))


def test_without_events_the_client_polls_at_the_pace_asked(
    api: FakeTasksApi, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    api.events_enabled = False
    api.retry_after = 1
    api.processing_s = 1.2
    api.default_response_format = "b64_json"
    argv = ["generate", "a slow one", "-n", "2", "-f", "webp", "--async", "-o", str(tmp_path)]
    run = run_cli(capsys, monkeypatch, argv, base_url=api.url, api_key=api.api_key)

    assert run.status == 0, run.stderr
    assert "processing" in run.stderr and "completed" in run.stderr
    assert 3 <= api.polls <= 5  # Retry-After: 1 over about two seconds, not a busy loop
    images = run.saved_images()
    assert [(image.format, image.size) for image in images] == [("WEBP", (1024, 1024))] * 2


def test_async_edit_sends_the_images_and_the_mask_as_multipart(
    api: FakeTasksApi, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second, mask = tmp_path / "a.png", tmp_path / "b.webp", tmp_path / "m.png"
    first.write_bytes(image_bytes((64, 64)))
    second.write_bytes(image_bytes((32, 32), "WEBP"))
    mask.write_bytes(image_bytes((64, 64), mode="RGBA", color=(0, 0, 0, 0)))
    argv = ["edit", "blend", str(first), str(second), "--mask", str(mask), "-n", "1", "--async"]
    run = run_cli(
        capsys, monkeypatch, [*argv, "-o", str(tmp_path / "out")], base_url=api.url, api_key=api.api_key
    )

    assert run.status == 0, run.stderr
    [task] = api.tasks.values()
    assert task.object == "image.edit.task"
    assert task.inputs == [first.read_bytes(), second.read_bytes()] and task.mask == mask.read_bytes()
    assert task.body == {"model": "gpt-image-2", "prompt": "blend", "n": 1}
    assert [image.format for image in run.saved_images()] == ["PNG"]


def test_a_failed_task_exits_non_zero_with_its_error(
    api: FakeTasksApi, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = ["generate", "please FAIL", "--async", "-o", str(tmp_path / "out")]
    run = run_cli(capsys, monkeypatch, argv, base_url=api.url, api_key=api.api_key)

    assert run.status == 1
    assert "failed: The upstream refused the prompt: moderation_blocked." in run.stderr
    assert not (tmp_path / "out").exists()


def test_a_submit_refused_is_the_sync_error(
    api: FakeTasksApi, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = ["generate", "a cat", "-s", "13x13", "--async"]
    run = run_cli(capsys, monkeypatch, argv, base_url=api.url, api_key=api.api_key)

    assert run.status == 1
    assert "Invalid size '13x13'" in run.stderr and "HTTP 400" in run.stderr
    assert api.tasks == {}


def test_list_pages_newest_first(
    api: FakeTasksApi, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    oldest, middle, newest = (submit(api, prompt) for prompt in ("one", "two", "three"))
    submit(api, "not mine", key=api.other_key)

    run = run_cli(
        capsys, monkeypatch, ["tasks", "list", "--limit", "2"], base_url=api.url, api_key=api.api_key
    )
    assert run.status == 0, run.stderr
    header, *rows, more = run.stdout.splitlines()
    assert header.split() == ["ID", "STATUS", "KIND", "MODEL", "CREATED"]
    assert [row.split()[0] for row in rows] == [newest, middle]
    assert more == f"More: imagegate tasks list --after {middle}"

    argv = ["tasks", "list", "--limit", "2", "--after", middle]
    run = run_cli(capsys, monkeypatch, argv, base_url=api.url, api_key=api.api_key)
    assert [line.split()[0] for line in run.stdout.splitlines()[1:]] == [oldest]


def test_show_and_wait_on_a_task(
    api: FakeTasksApi, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    task_id = submit(api, "a quiet bay")

    argv = ["tasks", "wait", task_id, "-o", str(tmp_path)]
    run = run_cli(capsys, monkeypatch, argv, base_url=api.url, api_key=api.api_key)
    assert run.status == 0, run.stderr
    assert [path.name for path in run.paths] == [f"{task_id}.json", f"{task_id}-1.png"]
    assert run.saved_images()[0].size == (1024, 640)

    run = run_cli(capsys, monkeypatch, ["tasks", "show", task_id], base_url=api.url, api_key=api.api_key)
    assert run.status == 0
    assert '"status": "completed"' in run.stdout and f'"id": "{task_id}"' in run.stdout


def test_cancel_then_wait_says_cancelled(
    api: FakeTasksApi, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    api.processing_s = 30
    task_id = submit(api, "a very long one")

    run = run_cli(capsys, monkeypatch, ["tasks", "cancel", task_id], base_url=api.url, api_key=api.api_key)
    assert (run.status, run.stdout) == (0, f"{task_id}: cancelled\n")

    argv = ["tasks", "wait", task_id, "-o", str(tmp_path)]
    run = run_cli(capsys, monkeypatch, argv, base_url=api.url, api_key=api.api_key)
    assert run.status == 1 and f"task {task_id} was cancelled" in run.stderr

    run = run_cli(capsys, monkeypatch, ["tasks", "cancel", task_id], base_url=api.url, api_key=api.api_key)
    assert run.status == 1 and "already cancelled" in run.stderr and "HTTP 409" in run.stderr


def test_another_keys_task_is_not_found(
    api: FakeTasksApi, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    task_id = submit(api, "private", key=api.other_key)

    run = run_cli(capsys, monkeypatch, ["tasks", "wait", task_id], base_url=api.url, api_key=api.api_key)
    assert run.status == 1
    assert f"No task found with id '{task_id}'" in run.stderr and "HTTP 404" in run.stderr


def test_a_cut_event_stream_falls_back_to_polling(
    api: FakeTasksApi, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    api.events_cut_after = 1
    api.retry_after = 1
    api.step_s = 0.3
    argv = ["generate", "through a flaky proxy", "--partials", "3", "--async", "-o", str(tmp_path)]
    run = run_cli(capsys, monkeypatch, argv, base_url=api.url, api_key=api.api_key)

    assert run.status == 0, run.stderr
    assert "partial preview 1 received" in run.stderr
    assert "partial preview 2 received" not in run.stderr  # the stream was gone by then
    [image] = run.saved_images()
    assert image.size == (1024, 1024)
