"""LiteLLM's proxy in front of the same fake upstream: the comparison point of ``--litellm``.

Opt-in, because it is a large install: on first use it goes into its own virtualenv,
``bench/.litellm-venv`` (git-ignored), so nothing of it reaches the gateway's environment. The
proxy gets one model per bench model, each ``openai/<model>`` at the fake upstream, a master key
(the bench's key) and no callbacks, so both proxies do the same work: authenticate, forward,
relay the answer.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from pathlib import Path

from common import BENCH_DIR, LOOPBACK
from procs import Procs, free_port, http, tail

VENV = BENCH_DIR / ".litellm-venv"
REQUIREMENT = "litellm[proxy]>=1.60"


def ensure_installed() -> Path:
    """The ``litellm`` executable, installing it into its own virtualenv when missing."""
    exe = VENV / "bin" / "litellm"
    if not exe.exists():
        print(f"installing {REQUIREMENT} into {VENV} (once)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run(
            [str(VENV / "bin" / "pip"), "install", "--quiet", REQUIREMENT], check=True, timeout=1800
        )
    return exe


def config_yaml(upstream_port: int, models: list[str], master_key: str) -> str:
    lines = ["model_list:"]
    for model in models:
        lines += [
            f"  - model_name: {model}",
            "    litellm_params:",
            f"      model: openai/{model}",
            f"      api_base: http://{LOOPBACK}:{upstream_port}/v1",
            "      api_key: bench",
        ]
    # drop_params: LiteLLM refuses response_format for model names it does not know otherwise; the
    # fake upstream answers base64 either way.
    lines += ["general_settings:", f"  master_key: {master_key}", "litellm_settings:", "  drop_params: true"]
    return "\n".join(lines) + "\n"


def start(
    procs: Procs,
    env: dict[str, str],
    workdir: Path,
    upstream_port: int,
    models: list[str],
    key: str,
    log: Path,
) -> tuple[str, subprocess.Popen[bytes]]:
    exe = ensure_installed()
    config = workdir / "litellm.yaml"
    config.write_text(config_yaml(upstream_port, models, key))
    port = free_port()
    # No database, no telemetry: the proxy as a plain relay.
    proxy_env = {**env, "LITELLM_LOG": "ERROR", "LITELLM_TELEMETRY": "False", "DISABLE_SCHEMA_UPDATE": "True"}
    cmd = [str(exe), "--config", str(config), "--host", LOOPBACK, "--port", str(port), "--num_workers", "1"]
    proc = procs.start(cmd, proxy_env, log)
    base = f"http://{LOOPBACK}:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"litellm exited with {proc.returncode}:\n{tail(log)}")
        with contextlib.suppress(OSError):
            if http("GET", f"{base}/health/liveliness", timeout=2)[0] == 200:
                return base, proc
        time.sleep(0.5)
    raise RuntimeError(f"litellm not ready after 120 s:\n{tail(log)}")
