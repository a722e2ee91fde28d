"""Running the client commands in-process, as a user would from a shell, and reading what they saved."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from imagegate.cli.main import main

CONNECTION_VARIABLES = ("IMAGEGATE_BASE_URL", "IMAGEGATE_API_KEY", "OPENAI_BASE_URL", "OPENAI_API_KEY")


@dataclass
class Run:
    status: int
    stdout: str
    stderr: str

    @property
    def paths(self) -> list[Path]:
        """The files the command saved: stdout is one path per line."""
        return [Path(line) for line in self.stdout.splitlines() if line.strip()]

    def saved_json(self) -> Any:
        [path] = [path for path in self.paths if path.suffix == ".json"]
        return json.loads(path.read_text(encoding="utf-8"))

    def saved_images(self) -> list[Image.Image]:
        images = []
        for path in self.paths:
            if path.suffix != ".json":
                image = Image.open(path)
                image.load()
                images.append(image)
        return images


def run_cli(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    *,
    base_url: str | None,
    api_key: str | None,
    stdin: str | None = None,
) -> Run:
    """``imagegate ARGV`` with the gateway given by IMAGEGATE_BASE_URL / IMAGEGATE_API_KEY only."""
    for name in CONNECTION_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    if base_url is not None:
        monkeypatch.setenv("IMAGEGATE_BASE_URL", base_url)
    if api_key is not None:
        monkeypatch.setenv("IMAGEGATE_API_KEY", api_key)
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    capsys.readouterr()
    status = main(argv)
    captured = capsys.readouterr()
    return Run(status=status, stdout=captured.out, stderr=captured.err)
