"""Instructions per small request: the gateway's cost counted by callgrind, not timed.

The load bench's CPU per request moves with the machine (the same code measured 0.40 and
0.67 ms within a day here), which hides a change worth a few per cent. Callgrind counts the
instructions the gateway executes instead, whatever else the machine is doing. So an
optimisation is judged here first (A/B, two runs each), and its effect on time measured with
``run.sh`` after.

    .venv/bin/python bench/instructions.py                 # 1000 requests, 10 at a time
    .venv/bin/python bench/instructions.py --top 30        # and the 30 costliest C functions

The gateway runs under ``valgrind --tool=callgrind`` with counting off; after a warm-up,
counting is switched on (``callgrind_control``) for exactly the measured requests, and the
total is divided by the requests answered 200. It runs ~50 times slower than natively, so the
measured requests go 10 at a time. The background loops' instructions (polling the database,
the catalog, the channels' health) grow with the time the requests take, so the rate counted in
``--idle`` seconds without requests is taken off. Counts are of the whole process (its threads
included) and of the interpreter's C code: Python functions show up as
``_PyEval_EvalFrameDefault``. Two runs of the same code here came within 0.3-1 %.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from common import BENCH_DIR, GEN_PATH, LOOPBACK, RESULTS_DIR
from hey import HeyResult, run_hey
from procs import Procs, clean_env, free_port, wait_healthy
from run import gateway_toml


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=1000, help="measured requests")
    parser.add_argument("--warmup", type=int, default=300, help="requests before counting starts")
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--idle", type=float, default=10, help="seconds counted with no request")
    parser.add_argument("--top", type=int, default=0, help="also list the N costliest functions")
    parser.add_argument("--imagegate", default=str(Path(sys.executable).with_name("imagegate")))
    args = parser.parse_args()
    for tool in ("valgrind", "callgrind_control", "hey"):
        if shutil.which(tool) is None:
            print(f"{tool} not found (apt-get install valgrind hey)", file=sys.stderr)
            return 2

    # Fixed, like everything else that could differ between two runs: the key's length, and
    # the hash seed (it decides dict and set layouts, and so the work of every lookup).
    key = "sk-bench-instructions-0000000000000000"
    body = json.dumps(
        {"model": "bench-small", "prompt": "bench", "size": "1024x1024", "response_format": "b64_json"}
    )
    procs = Procs()
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="imagegate-instructions-") as tmp:
        try:
            env = clean_env()
            up_port, gw_port = free_port(), free_port()
            upstream_log = RESULTS_DIR / "upstream.log"
            upstream = procs.start(
                [sys.executable, str(BENCH_DIR / "fake_upstream.py"), "--port", str(up_port)],
                env,
                upstream_log,
            )
            wait_healthy(f"http://{LOOPBACK}:{up_port}", upstream, upstream_log)

            config = Path(tmp) / "imagegate.toml"
            config.write_text(gateway_toml(up_port, ["bench-small"]))
            (Path(tmp) / "data").mkdir()
            out = Path(tmp) / "callgrind.out"
            gateway_env = {
                **env,
                "IMAGEGATE_DATA_DIR": str(Path(tmp) / "data"),
                "IMAGEGATE_ADMIN_KEY": key,
                "IMAGEGATE_RESPONSE_FORMAT": "b64_json",
                "IMAGEGATE_DEMO": "1",
                "IMAGEGATE_LOG_LEVEL": "INFO",  # as in run.py: the access log line is part of the cost
                "PYTHONHASHSEED": "0",
            }
            valgrind = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
            # The console script is a Python file: valgrind runs the interpreter on it.
            serve = [sys.executable, args.imagegate, "serve", "--host", LOOPBACK, "--port", str(gw_port)]
            gateway_log = RESULTS_DIR / "gateway.log"
            gateway = procs.start([*valgrind, *serve, "--config", str(config)], gateway_env, gateway_log)
            base = f"http://{LOOPBACK}:{gw_port}"
            wait_healthy(base, gateway, gateway_log, timeout_s=300)

            url = base + GEN_PATH
            run_hey(url, body, key, args.concurrency, requests=args.warmup, timeout_s=120)
            counter = Counter(gateway.pid, Path(tmp))
            # What the process does with no request at all (its background loops poll the
            # database, the catalog, the channels' health) is counted by the second, and taken
            # off: otherwise it depends on how long the requests took.
            idle, idle_s = counter.count(lambda: time.sleep(args.idle))
            results: list[HeyResult] = []
            load, load_s = counter.count(
                lambda: results.append(
                    run_hey(url, body, key, args.concurrency, requests=args.requests, timeout_s=120)
                )
            )
            measured = results[0]
            if measured.ok == 0:
                print("no request answered 200; see bench/results/gateway.log", file=sys.stderr)
                return 1
            background = idle.total * load_s / idle_s
            per_request = (load.total - background) / measured.ok
            print(f"{measured.ok} requests answered 200 of {args.requests}, in {load_s:.1f} s")
            print(f"idle: {idle.total / idle_s:,.0f} instructions a second ({idle_s:.1f} s counted)")
            print(f"instructions: {load.total:,} in all; per request, less the idle rate: {per_request:,.0f}")
            if args.top:
                annotate = subprocess.run(
                    ["callgrind_annotate", str(load.path)], check=True, capture_output=True, text=True
                )
                lines = [
                    line for line in annotate.stdout.splitlines() if "file:function" in line or ":" in line
                ]
                start = next(i for i, line in enumerate(lines) if "file:function" in line)
                print("\n".join(lines[start : start + 1 + args.top]))
        finally:
            procs.stop_all()
    return 0


@dataclass(frozen=True)
class Dump:
    path: Path
    total: int


class Counter:
    """Counts one stretch of the gateway's instructions at a time, through ``callgrind_control``."""

    def __init__(self, pid: int, folder: Path) -> None:
        self.control = ["callgrind_control", str(pid)]
        self.folder = folder

    def count(self, during: Callable[[], object]) -> tuple[Dump, float]:
        """The instructions executed while ``during`` runs, and the seconds it took."""
        self._send("--zero")
        self._send("--instr=on")
        started = time.monotonic()
        during()
        seconds = time.monotonic() - started
        self._send("--instr=off")
        before = set(self.folder.glob("callgrind.out*"))
        self._send("--dump")
        path = self._new_dump(before)
        return Dump(path, _total_instructions(path)), seconds

    def _send(self, command: str) -> None:
        subprocess.run([*self.control, command], check=True, capture_output=True)

    def _new_dump(self, before: set[Path], timeout_s: float = 60) -> Path:
        """The file callgrind writes on ``--dump`` (it names each dump anew)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            new = [path for path in self.folder.glob("callgrind.out*") if path not in before]
            done = [path for path in new if _total_line(path) is not None]
            if done:
                return done[0]
            time.sleep(0.2)
        raise RuntimeError("callgrind wrote no dump")


def _total_line(path: Path) -> str | None:
    with contextlib.suppress(OSError):
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("totals:"):
                return line
    return None


def _total_instructions(dump: Path) -> int:
    line = _total_line(dump)
    if line is None:
        raise RuntimeError(f"no totals line in {dump}")
    return int(line.split()[1])


if __name__ == "__main__":
    sys.exit(main())
