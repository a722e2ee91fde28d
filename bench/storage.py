"""Storage benchmarks: 4 MB images in url mode on S3 against the folder store, and `storage gc`.

    .venv/bin/python bench/storage.py url --duration 10          # folder store, then S3 (moto)
    .venv/bin/python bench/storage.py url --s3 s3rver            # S3 on s3rver (npm) instead
    .venv/bin/python bench/storage.py gc --images 100000         # gc of 100k expired images

`url`: the same `hey -c 20` load (model bench-4mb-unique, `response_format: url`) through a gateway
whose images go to the folder store, then through one on an S3-compatible server on loopback.
Every request stores a distinct ~4.2 MB PNG (the fake upstream adds a counter chunk). Targets:
S3 ≥ 70 % of the folder store's req/s, the S3 gateway's peak RSS ≤ 300 MB. The S3 server shares
the machine with hey, the fake upstream and the gateway, so its own cost is in the figure.

`gc`: plants N images in a past day of a folder store and times `imagegate storage gc`.
Target ≤ 60 s for 100,000.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import BENCH_DIR, GEN_PATH, LOOPBACK, MIB, RESULTS_DIR
from hey import HeyResult, run_hey
from procs import Procs, clean_env, free_port, http, wait_healthy
from sampling import RssSampler

REPO = BENCH_DIR.parent
S3RVER = REPO / "tests" / "storage" / "s3rver" / "node_modules" / ".bin" / "s3rver"
MODEL = "bench-4mb-unique"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "S3RVER", "AWS_SECRET_ACCESS_KEY": "S3RVER", "AWS_REGION": "us-east-1"}


def start_s3(kind: str, procs: Procs, tmp: Path) -> str:
    port = free_port()
    log = RESULTS_DIR / f"s3-{kind}.log"
    if kind == "moto":
        cmd = [sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p", str(port)]
    else:
        cmd = [str(S3RVER), "-d", str(tmp / "s3rver"), "-a", LOOPBACK, "-p", str(port), "--silent"]
    procs.start(cmd, clean_env(), log)
    endpoint = f"http://{LOOPBACK}:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            status, _ = http("PUT", f"{endpoint}/bench", b"", None, timeout=2)
            if status in (200, 409):
                return endpoint
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{kind} did not start")


def start_gateway(
    procs: Procs, tmp: Path, up_port: int, key: str, storage: dict[str, str]
) -> tuple[str, int]:
    (tmp / "data").mkdir(parents=True)
    config = tmp / "imagegate.toml"
    config.write_text(
        "\n".join(
            [
                "[[channels]]",
                'name = "bench"',
                'provider = "openai"',
                f'base_url = "http://{LOOPBACK}:{up_port}/v1"',
                'api_key = "bench"',
                'models = ["bench-4mb-unique"]',
                "timeout_s = 60",
                '[models."bench-4mb-unique"]',
                'sizes = ["1024x1024", "auto"]',
            ]
        )
        + "\n"
    )
    env = {
        **clean_env(),
        **CREDENTIALS,
        **storage,
        "IMAGEGATE_DATA_DIR": str(tmp / "data"),
        "IMAGEGATE_ADMIN_KEY": key,
        "IMAGEGATE_RESPONSE_FORMAT": "url",
        "IMAGEGATE_LOG_LEVEL": "WARNING",
    }
    port = free_port()
    log = RESULTS_DIR / f"gateway-{tmp.name}.log"
    imagegate = str(Path(sys.executable).parent / "imagegate")
    cmd = [imagegate, "serve", "--host", LOOPBACK, "--port", str(port), "--config", str(config)]
    proc = procs.start(cmd, env, log)
    base = f"http://{LOOPBACK}:{port}"
    wait_healthy(base, proc, log)
    return base, proc.pid


def measure(base: str, pid: int, key: str, duration_s: float) -> tuple[HeyResult, float]:
    body = json.dumps(
        {"model": "bench-4mb-unique", "prompt": "bench", "size": "1024x1024", "response_format": "url"}
    )
    status, raw = http("POST", base + GEN_PATH, body.encode(), key, timeout=60)
    if status != 200 or b'"url"' not in raw:
        raise RuntimeError(f"smoke request failed: HTTP {status} {raw[:300]!r}")
    run_hey(base + GEN_PATH, body, key, 20, duration_s=2.0, timeout_s=60)  # warm-up
    with RssSampler(pid) as sampler:
        sampler.take_peak()
        result = run_hey(base + GEN_PATH, body, key, 20, duration_s=duration_s, timeout_s=60)
        peak = sampler.take_peak() / MIB
    return result, peak


def url_bench(args: argparse.Namespace) -> int:
    procs = Procs()
    key = "sk-bench-" + secrets.token_urlsafe(24)
    figures: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="imagegate-storage-bench-") as tmp_name:
        tmp = Path(tmp_name)
        try:
            up_port = free_port()
            up_log = RESULTS_DIR / "upstream-storage.log"
            up = procs.start(
                [sys.executable, str(BENCH_DIR / "fake_upstream.py"), "--port", str(up_port)],
                clean_env(),
                up_log,
            )
            wait_healthy(f"http://{LOOPBACK}:{up_port}", up, up_log)
            endpoint = start_s3(args.s3, procs, tmp)
            stores = {
                "folder": {},
                "s3": {"IMAGEGATE_STORAGE_URL": "s3://bench/images", "IMAGEGATE_S3_ENDPOINT": endpoint},
            }
            for name, storage in stores.items():
                base, pid = start_gateway(procs, tmp / name, up_port, key, storage)
                print(f"[{name}] 4 MB url mode, c=20, {args.duration:.0f} s", flush=True)
                result, peak = measure(base, pid, key, args.duration)
                figures[name] = {
                    "ok_rps": round(result.ok_rps, 1),
                    "errors": result.failures,
                    "p50_s": result.pct(50) or 0,
                    "peak_rss_mb": round(peak, 1),
                }
                print(f"[{name}] {figures[name]}", flush=True)
        finally:
            procs.stop_all()
    ratio = figures["s3"]["ok_rps"] / figures["folder"]["ok_rps"] if figures["folder"]["ok_rps"] else 0
    passed = ratio >= 0.7 and figures["s3"]["peak_rss_mb"] <= 300 and not figures["s3"]["errors"]
    verdict = "PASS" if passed else "FAIL"
    print(
        f"S3 ({args.s3}) / folder req/s: {ratio:.2f} (target ≥ 0.70); "
        f"S3 gateway peak RSS {figures['s3']['peak_rss_mb']} MB (target ≤ 300): {verdict}"
    )
    write(
        {
            "scenario": "storage-url",
            "s3": args.s3,
            "figures": figures,
            "ratio": round(ratio, 3),
            "loadavg": os.getloadavg()[0],
            "passed": passed,
        }
    )
    return 0 if passed else 1


def gc_bench(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="imagegate-gc-bench-") as tmp_name:
        data = Path(tmp_name)
        day = data / "images" / "20200101"
        day.mkdir(parents=True)
        started = time.perf_counter()
        for index in range(args.images):
            (day / f"{index:064x}.png").write_bytes(b"x" * 64)
        planted = time.perf_counter() - started
        env = {**clean_env(), "IMAGEGATE_DATA_DIR": str(data), "IMAGEGATE_IMAGE_RETENTION_DAYS": "30"}
        imagegate = str(Path(sys.executable).parent / "imagegate")
        started = time.perf_counter()
        out = subprocess.run(
            [imagegate, "storage", "gc"], env=env, capture_output=True, text=True, check=True
        )
        elapsed = time.perf_counter() - started
        left = sum(1 for _ in day.parent.rglob("*.png"))
    print(out.stdout.strip())
    passed = elapsed <= 60 and left == 0
    print(
        f"planted {args.images} images in {planted:.1f} s; storage gc took {elapsed:.2f} s "
        f"(target ≤ 60 s), {left} left: {'PASS' if passed else 'FAIL'}"
    )
    write(
        {
            "scenario": "storage-gc",
            "images": args.images,
            "gc_s": round(elapsed, 2),
            "left": left,
            "passed": passed,
        }
    )
    return 0 if passed else 1


def write(result: dict[str, object]) -> None:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{result['scenario']}.json"
    path.write_text(json.dumps(result, indent=2))
    print(f"results: {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    url = commands.add_parser("url", help="4 MB images in url mode: S3 against the folder store")
    url.add_argument("--duration", type=float, default=10.0)
    url.add_argument("--s3", choices=["moto", "s3rver"], default="moto")
    gc = commands.add_parser("gc", help="time `imagegate storage gc` of N expired images")
    gc.add_argument("--images", type=int, default=100_000)
    args = parser.parse_args(argv)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    return url_bench(args) if args.command == "url" else gc_bench(args)


if __name__ == "__main__":
    sys.exit(main())
