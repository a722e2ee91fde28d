"""A real `imagegate serve` process on loopback, for tests of what the server itself does.

with served(tmp_path, IMAGEGATE_HEADER_TIMEOUT_S="1") as gw:
    requests.get(f"{gw.url}/healthz")
print(gw.log())   # everything it wrote, after it stopped
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.conftest import ADMIN_KEY, free_port

IMAGEGATE = str(Path(sys.executable).with_name("imagegate"))


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def admin(self, method: str, path: str, **kwargs: object) -> requests.Response:
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        return requests.request(method, f"{self.url}{path}", headers=headers, timeout=10, **kwargs)  # type: ignore[arg-type]

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM, then wait for the exit status (SIGKILL if it does not come in time)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise


@contextlib.contextmanager
def served(tmp_path: Path, *args: str, **env: str) -> Iterator[Served]:
    """``imagegate serve`` with ``IMAGEGATE_*`` overrides; stopped (SIGTERM) on exit."""
    port = free_port()
    data = tmp_path / f"data-{port}"
    values = {
        **{k: v for k, v in os.environ.items() if not k.startswith("IMAGEGATE_")},
        "IMAGEGATE_ADMIN_KEY": ADMIN_KEY,
        "IMAGEGATE_DATA_DIR": str(data),
        "IMAGEGATE_PORT": str(port),
        "IMAGEGATE_LOG_LEVEL": "INFO",
        **env,
    }
    log_path = tmp_path / f"serve-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [IMAGEGATE, "serve", *args], cwd=tmp_path, env=values, stdout=log, stderr=subprocess.STDOUT
        )
    gateway = Served(process, port, log_path)
    try:
        _wait_healthy(gateway)
        yield gateway
    finally:
        with contextlib.suppress(subprocess.TimeoutExpired):
            gateway.terminate(timeout=30)


def _wait_healthy(gateway: Served) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert gateway.process.poll() is None, gateway.log()
        try:
            if requests.get(f"{gateway.url}/healthz", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"imagegate serve did not start:\n{gateway.log()}")
