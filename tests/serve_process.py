"""`imagegate serve` as a real child process, for tests of replicas and worker processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

from tests.conftest import free_port


class ServeProcess:
    def __init__(self, env: Mapping[str, str], data_dir: Path, workers: int = 1) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = data_dir / f"serve-{self.port}.log"
        data_dir.mkdir(parents=True, exist_ok=True)
        # Only what the test says: an IMAGEGATE_* variable of the shell running the suite must not
        # reach the gateway under test.
        environment = {
            **{name: value for name, value in os.environ.items() if not name.startswith("IMAGEGATE_")},
            **env,
            "IMAGEGATE_DATA_DIR": str(data_dir),
            "IMAGEGATE_PORT": str(self.port),
            "IMAGEGATE_LOG_LEVEL": "WARNING",
        }
        command = [sys.executable, "-m", "imagegate.cli.main", "serve", "--workers", str(workers)]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(command, env=environment, stdout=log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"serve exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"serve did not become ready: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
