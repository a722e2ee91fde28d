"""Acceptance check for the edge (SPEC §8): idle sockets and heavy edits must not starve small requests.

Starts `imagegate serve` (demo provider), opens ``--idle`` sockets that never send a byte,
starts ``--edits`` concurrent edits of ``--images`` PNGs of ``--side``x``--side`` pixels each,
and while they run times ``/healthz`` and a small demo generation. Passes when both answer
in under 1 s.

    .venv/bin/python bench/edge_load.py                         # 2000 idle, 4 edits of 16 x 6320x6320
    .venv/bin/python bench/edge_load.py --idle 500 --side 3000  # lighter

Figures go to bench/results/edge_load.json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests
from PIL import Image

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
LOOPBACK = "127.0.0.1"
NO_PROXY = {"http": "", "https": ""}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--idle", type=int, default=2000, help="idle sockets held open (default 2000)")
    p.add_argument("--edits", type=int, default=4, help="concurrent heavy edits (default 4)")
    p.add_argument("--images", type=int, default=16, help="input images per edit (default 16)")
    p.add_argument("--side", type=int, default=6320, help="input image side in pixels (default 6320)")
    p.add_argument("--probes", type=int, default=5, help="small generations timed during the load")
    p.add_argument("--server", choices=["uvicorn", "granian"], help="imagegate serve --server")
    p.add_argument("--imagegate", default=str(Path(sys.executable).parent / "imagegate"))
    return p.parse_args(argv)


def raise_nofile(needed: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft < needed:
        sys.exit(f"open-file limit {soft} < {needed} needed; raise `ulimit -n`")
    return soft


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def heavy_png(side: int) -> bytes:
    image = Image.new("RGB", (side, side), (40, 90, 160))
    image.paste((200, 60, 30), (0, 0, side // 3, side // 3))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def timed(call: Any) -> tuple[float, int]:
    started = time.perf_counter()
    status = call().status_code
    return round(time.perf_counter() - started, 3), status


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    nofile = raise_nofile(args.idle + 512)
    key = "sk-bench-" + secrets.token_urlsafe(16)
    port = free_port()
    base = f"http://{LOOPBACK}:{port}"
    auth = {"Authorization": f"Bearer {key}"}
    RESULTS_DIR.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="imagegate-edge-") as tmp:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("IMAGEGATE_")},
            "IMAGEGATE_DATA_DIR": f"{tmp}/data",
            "IMAGEGATE_ADMIN_KEY": key,
            "IMAGEGATE_PORT": str(port),
            "IMAGEGATE_LOG_LEVEL": "WARNING",
            # The idle sockets must outlive the run: they are the load, not what is tested here.
            "IMAGEGATE_HEADER_TIMEOUT_S": "600",
        }
        cmd = [args.imagegate, "serve"] + (["--server", args.server] if args.server else [])
        log = (RESULTS_DIR / "edge_load.gateway.log").open("wb")
        gateway = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        idle: list[socket.socket] = []
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if requests.get(f"{base}/healthz", timeout=1, proxies=NO_PROXY).ok:
                        break
                except requests.ConnectionError:
                    pass
                if time.monotonic() > deadline or gateway.poll() is not None:
                    sys.exit("gateway did not start; see bench/results/edge_load.gateway.log")
                time.sleep(0.2)

            def small() -> requests.Response:
                body = {"model": "demo", "prompt": "small", "size": "1024x1024", "quality": "low"}
                url = f"{base}/v1/images/generations"
                return requests.post(url, json=body, headers=auth, proxies=NO_PROXY)

            def health() -> requests.Response:
                return requests.get(f"{base}/healthz", timeout=30, proxies=NO_PROXY)

            quiet = {"small_generation_s": timed(small)[0], "healthz_s": timed(health)[0]}
            for _ in range(args.idle):
                idle.append(socket.create_connection((LOOPBACK, port)))
            png = heavy_png(args.side)
            files = [("image[]", (f"{i}.png", png, "image/png")) for i in range(args.images)]
            edits: list[dict[str, Any]] = []

            def edit() -> None:
                started = time.perf_counter()
                answer = requests.post(
                    f"{base}/v1/images/edits",
                    data={"model": "demo", "prompt": "heavy", "size": "1024x1024"},
                    files=files,
                    headers=auth,
                    proxies=NO_PROXY,
                    timeout=600,
                )
                seconds = round(time.perf_counter() - started, 2)
                edits.append({"status": answer.status_code, "seconds": seconds})

            threads = [threading.Thread(target=edit) for _ in range(args.edits)]
            peak_rss = 0.0
            for thread in threads:
                thread.start()
            time.sleep(1.5)  # uploads in, decoding under way
            probes = []
            for _ in range(args.probes):
                probes.append({"healthz": timed(health), "small_generation": timed(small)})
                peak_rss = max(peak_rss, rss_mb(gateway.pid))
                time.sleep(0.5)
            while any(thread.is_alive() for thread in threads):
                peak_rss = max(peak_rss, rss_mb(gateway.pid))
                time.sleep(0.2)
            open_idle = sum(1 for sock in idle if _still_open(sock))
        finally:
            for sock in idle:
                sock.close()
            os.killpg(gateway.pid, signal.SIGTERM)
            gateway.wait(60)

    worst_health = max(p["healthz"][0] for p in probes)
    worst_small = max(p["small_generation"][0] for p in probes)
    result = {
        "idle_sockets": args.idle,
        "idle_sockets_still_open": open_idle,
        "edits": f"{args.edits} x {args.images} PNG {args.side}x{args.side} ({len(png) / 1e6:.2f} MB each)",
        "nofile": nofile,
        "cpus": os.cpu_count(),
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "quiet": quiet,
        "under_load": probes,
        "worst_healthz_s": worst_health,
        "worst_small_generation_s": worst_small,
        "heavy_edits": edits,
        "gateway_peak_rss_mb": round(peak_rss),
        "passed": worst_health < 1
        and worst_small < 1
        and all(p["small_generation"][1] == 200 for p in probes),
    }
    (RESULTS_DIR / "edge_load.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0 if result["passed"] else 1


def _still_open(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


if __name__ == "__main__":
    sys.exit(main())
