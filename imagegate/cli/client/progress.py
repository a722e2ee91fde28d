"""Progress while waiting on the gateway: a live line with the elapsed time and the previews received.

On a terminal the line is redrawn in place (rich ``Live``) and vanishes when done; milestones — a
partial preview, a task's status change — are printed as lines of their own, so a log or a pipe
(where nothing is redrawn) still shows what happened and when. Everything goes to stderr: stdout
carries only the saved paths, one per line, for scripts.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import Self

from rich.console import Console
from rich.live import Live
from rich.spinner import Spinner
from rich.text import Text


def stderr_console() -> Console:
    # No markup: prompts, replies and error messages are shown as they are, brackets and all.
    return Console(stderr=True, soft_wrap=True, highlight=False, markup=False)


class Waiting:
    """``with Waiting(console, "generating") as wait: ... wait.partial() ... wait.status("processing")``."""

    def __init__(self, console: Console, label: str) -> None:
        self.console = console
        self.label = label
        self.partials = 0
        self.state = ""
        self.started = time.monotonic()
        self._spinner = Spinner("dots")
        self._live = Live(console=console, transient=True, refresh_per_second=8, get_renderable=self._render)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def partial(self) -> None:
        self.partials += 1
        self.note(f"partial preview {self.partials} received")

    def status(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.note(state)

    def note(self, text: str) -> None:
        self.console.print(f"[{self.elapsed:5.1f}s] {text}")

    def _render(self) -> Spinner:
        parts = [self.label]
        if self.state:
            parts.append(self.state)
        parts.append(f"{self.elapsed:.1f}s")
        if self.partials:
            parts.append(f"{self.partials} partial preview{'s' if self.partials != 1 else ''}")
        self._spinner.update(text=Text(" · ".join(parts)))
        return self._spinner

    def __enter__(self) -> Self:
        self.started = time.monotonic()
        self._live.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._live.stop()
        if kind is None:
            self.note("done")
