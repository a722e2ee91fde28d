"""``imagegate edit`` against a live gateway with the demo provider: several images, a mask, streaming."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagegate.providers.demo import edit_auto_size, input_image_tokens
from tests.cli.client_run import run_cli
from tests.conftest import ADMIN_KEY, LiveGateway, image_bytes


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[Path, Path, Path]:
    first, second, mask = tmp_path / "first.png", tmp_path / "second.jpg", tmp_path / "mask.png"
    first.write_bytes(image_bytes((800, 600), "PNG", (30, 120, 200)))
    second.write_bytes(image_bytes((512, 512), "JPEG", (240, 200, 40)))
    mask.write_bytes(image_bytes((800, 600), "PNG", (0, 0, 0, 0), mode="RGBA"))
    return first, second, mask


def test_edit_sends_every_image_and_the_mask_and_saves_the_result(
    gateway: LiveGateway,
    inputs: tuple[Path, Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, second, mask = inputs
    argv = ["edit", "put them side by side", str(first), str(second), "--mask", str(mask), "-m", "demo"]
    run = run_cli(
        capsys, monkeypatch, [*argv, "-o", str(tmp_path / "out")], base_url=gateway.url, api_key=ADMIN_KEY
    )

    assert run.status == 0, run.stderr
    [image] = run.saved_images()
    # No size asked: the demo keeps the first image's shape, so the first image went first.
    assert (image.format, image.size) == ("PNG", edit_auto_size(800, 600))
    usage = run.saved_json()["usage"]
    # The demo bills each input image it received: both arrived.
    assert usage["input_tokens_details"]["image_tokens"] == input_image_tokens(800, 600) + input_image_tokens(
        512, 512
    )
    assert run.paths[1].name == f"{run.paths[0].stem}-1.png"


def test_the_mask_reaches_the_gateway(
    gateway: LiveGateway,
    inputs: tuple[Path, Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A mask of the wrong size is refused by the gateway, which it can only be if it was sent."""
    first, _, _ = inputs
    small_mask = tmp_path / "small-mask.png"
    small_mask.write_bytes(image_bytes((64, 64), "PNG", (0, 0, 0, 0), mode="RGBA"))
    argv = ["edit", "recolour", str(first), "--mask", str(small_mask), "-m", "demo"]
    run = run_cli(capsys, monkeypatch, argv, base_url=gateway.url, api_key=ADMIN_KEY)

    assert run.status == 1
    assert "mask" in run.stderr.lower() and "HTTP 400" in run.stderr


def test_streamed_edit_with_a_size_and_format(
    gateway: LiveGateway,
    inputs: tuple[Path, Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, second, _ = inputs
    argv = ["edit", "as a watercolour", str(first), str(second), "-m", "demo", "-s", "1024x1024"]
    argv += ["-f", "jpeg", "--partials", "1", "-o", str(tmp_path / "out")]
    run = run_cli(capsys, monkeypatch, argv, base_url=gateway.url, api_key=ADMIN_KEY)

    assert run.status == 0, run.stderr
    assert "partial preview 1 received" in run.stderr
    [image] = run.saved_images()
    assert (image.format, image.size) == ("JPEG", (1024, 1024))
    events = [event["type"] for event in run.saved_json()]
    assert events == ["image_edit.partial_image", "image_edit.completed"]


def test_an_unreadable_image_is_said_before_any_request(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = ["edit", "x", str(tmp_path / "missing.png"), "-m", "demo"]
    run = run_cli(capsys, monkeypatch, argv, base_url="http://127.0.0.1:9", api_key="sk-x")

    assert run.status == 2
    assert "cannot read" in run.stderr and "missing.png" in run.stderr
