"""Load benchmark: the fake upstream alone, then the same load through `imagegate serve`.

Starts ``bench/fake_upstream.py`` and the gateway as subprocesses on free loopback ports, runs
``hey`` per scenario against each, samples the gateway's RSS and CPU from /proc, prints a table
with the targets and writes ``bench/results/latest.json``.

Usage::

    bench/run.sh                                   # all scenarios, installs hey if missing
    .venv/bin/python bench/run.py --scenarios small --duration 5
    .venv/bin/python bench/run.py --direct-only    # measure the fake upstream only
    bench/run.sh --scenarios slow --floor          # and what the stack itself allows (floor_proxy.py)

Everything stays on 127.0.0.1 and every load run is bounded in count and time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import floor_proxy
import litellm_proxy
from common import BENCH_DIR, GEN_PATH, LOOPBACK, MIB, RESULTS_DIR
from hey import HeyResult, run_hey
from procs import Procs, clean_env, free_port, http, raise_nofile_limit, wait_healthy
from report import print_report, write_json
from sampling import RssSampler, cpu_seconds, rss_bytes, start_profile, stop_profile, summarize_profile
from scenarios import FLOOR_SCENARIOS, SCENARIOS, Scenario, ScenarioResult, evaluate


def gateway_toml(upstream_port: int, models: list[str], billed: bool = False) -> str:
    quoted = ", ".join(f'"{m}"' for m in models)
    parts = [
        "[[channels]]",
        'name = "bench"',
        'provider = "openai"',
        f'base_url = "http://{LOOPBACK}:{upstream_port}/v1"',
        'api_key = "bench"',
        f"models = [{quoted}]",
        "timeout_s = 60",
    ]
    for model in models:
        parts += ["", f'[models."{model}"]', 'sizes = ["1024x1024", "auto"]']
        if billed:
            parts.append("price = { per_image = { default = 0.0001 } }")
    return "\n".join(parts) + "\n"


def smoke(base: str, model: str, key: str) -> str:
    """One request first, so a broken route fails loudly instead of as 100k identical errors."""
    body = json.dumps({"model": model, "prompt": "bench", "size": "1024x1024", "response_format": "b64_json"})
    status, raw = http("POST", base + GEN_PATH, body.encode(), key, timeout=30)
    if status != 200:
        return f"HTTP {status}: {raw[:300]!r}"
    try:
        item = json.loads(raw)["data"][0]
        return "" if item.get("b64_json") else f"no b64_json in {raw[:300]!r}"
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        return f"unexpected body ({exc}): {raw[:300]!r}"


def request_body(sc: Scenario) -> str:
    return json.dumps(
        {
            "model": sc.model,
            "prompt": "bench",
            "size": "1024x1024",
            "response_format": "b64_json",
            **dict(sc.extra),
        }
    )


def measured_load(
    url: str, body: str, key: str, sc: Scenario, duration_s: float, timeout_s: int
) -> HeyResult:
    """The scenario's measured hey run: its request count when it sets one, else ``duration_s``."""
    return run_hey(
        url,
        body,
        key,
        sc.concurrency,
        duration_s=None if sc.requests else duration_s,
        requests=sc.requests,
        timeout_s=timeout_s,
    )


def run_scenario(
    sc: Scenario,
    upstream: str,
    gateway: str | None,
    key: str,
    duration_s: float,
    sampler: RssSampler | None,
    py_spy: str | None = None,
) -> ScenarioResult:
    res = ScenarioResult(sc)
    body = request_body(sc)

    def load(base: str, measure: bool) -> HeyResult:
        url = base + GEN_PATH
        if sc.warmup_s:
            run_hey(url, body, key, sc.concurrency, duration_s=sc.warmup_s, timeout_s=sc.timeout_s)
        cpu0 = 0.0
        if sampler and measure:
            sampler.take_peak()  # start this scenario's peak from the current RSS
            cpu0 = cpu_seconds(sampler.pids)
        prof = None
        if sampler and measure and py_spy:
            prof_path = RESULTS_DIR / f"profile-{sc.name}.txt"
            prof = start_profile(sampler.root, prof_path, py_spy)
        try:
            out = measured_load(url, body, key, sc, duration_s, sc.timeout_s)
        finally:
            if prof is not None:
                stop_profile(prof)
        if prof is not None:
            res.profile = summarize_profile(prof_path)
        if sampler and measure:
            res.gateway_peak_rss_mb = sampler.take_peak() / MIB
            if out.ok:
                res.gateway_cpu_ms_per_req = (cpu_seconds(sampler.pids) - cpu0) * 1000 / out.ok
        return out

    print(f"[{sc.name}] direct: {sc.model}, c={sc.concurrency}", flush=True)
    res.direct = load(upstream, measure=False)
    if gateway is not None:
        if problem := smoke(gateway, sc.model, key):
            res.error = f"smoke request failed: {problem}"
            return res
        print(f"[{sc.name}] gateway: {sc.model}, c={sc.concurrency}", flush=True)
        res.gateway = load(gateway, measure=True)
        res.targets = evaluate(res)
    return res


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=10.0, help="seconds per timed run (default 10)")
    p.add_argument(
        "--scenarios", default="small,4mb,slow,stream", help="comma list of: " + ",".join(SCENARIOS)
    )
    p.add_argument("--keep-going", action="store_true", help="run every scenario even after one fails")
    p.add_argument("--workers", type=int, default=1, help="imagegate serve --workers")
    p.add_argument(
        "--server", choices=["uvicorn", "granian"], help="imagegate serve --server (default: its own)"
    )
    p.add_argument("--direct-only", action="store_true", help="measure the fake upstream only")
    p.add_argument(
        "--billed",
        action="store_true",
        help="call the gateway with a quota-limited key and priced models (every request held and charged)",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="run py-spy on the gateway during each measured run (results/profile-<scenario>.txt); "
        "it shares the CPUs, so figures from a profiled run read a little low",
    )
    p.add_argument(
        "--litellm",
        action="store_true",
        help="also run the small scenario through LiteLLM's proxy (installed into bench/.litellm-venv "
        "on first use) and compare",
    )
    p.add_argument(
        "--floor",
        action="store_true",
        help="also run the " + ", ".join(FLOOR_SCENARIOS) + " scenarios through bench/floor_proxy.py, the "
        "least a proxy on the gateway's own stack does: what the stack itself allows on this machine",
    )
    p.add_argument(
        "--imagegate",
        default=str(Path(sys.executable).parent / "imagegate"),
        help="the imagegate executable (default: the one beside this Python)",
    )
    args = p.parse_args(argv)
    args.scenario_list = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    if unknown := [s for s in args.scenario_list if s not in SCENARIOS]:
        p.error(f"unknown scenario(s) {unknown}; choose from {list(SCENARIOS)}")
    if not 0 < args.duration <= 600:
        p.error("--duration must be in (0, 600]")
    return args


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so the finally that ends the subprocesses always runs."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("hey") is None:
        print("hey not found: run bench/run.sh (it installs it) or apt-get install hey", file=sys.stderr)
        return 2
    py_spy = None
    if args.profile:
        py_spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
        if py_spy is None:
            print("--profile needs py-spy: .venv/bin/pip install py-spy", file=sys.stderr)
            return 2
    nofile = raise_nofile_limit()
    if "slow" in args.scenario_list and nofile < 4096:
        print(f"warning: open-file limit is {nofile}; the slow scenario needs ~4096", file=sys.stderr)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    load1 = os.getloadavg()[0]
    if load1 > 0.5 * (os.cpu_count() or 1):
        # Client, upstream and gateway already share the box; anything else running skews every figure.
        print(f"warning: load average is {load1:.2f} before starting; figures will read low", file=sys.stderr)
    key = "sk-bench-" + secrets.token_urlsafe(24)
    models = list(dict.fromkeys(sc.model for sc in SCENARIOS.values()))
    procs = Procs()
    results: list[ScenarioResult] = []
    meta: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "cpus": os.cpu_count(),
        "duration_s": args.duration,
        "workers": args.workers,
        "server": args.server or "default",
        "nofile": nofile,
        "loadavg_1m_before": round(load1, 2),
        "direct_only": args.direct_only,
        "billed": args.billed,
    }
    with sigterm_as_interrupt(), tempfile.TemporaryDirectory(prefix="imagegate-bench-") as tmp:
        try:
            env = clean_env()
            up_port = free_port()
            up_log = RESULTS_DIR / "upstream.log"
            up = procs.start(
                [sys.executable, str(BENCH_DIR / "fake_upstream.py"), "--port", str(up_port)], env, up_log
            )
            upstream = f"http://{LOOPBACK}:{up_port}"
            wait_healthy(upstream, up, up_log)
            for name in args.scenario_list:
                # A fresh gateway per scenario: peak RSS is then each scenario's own, not the
                # high-water mark an earlier scenario left in the heap.
                gateway: str | None = None
                sampler: RssSampler | None = None
                gw_proc: subprocess.Popen[bytes] | None = None
                gw_key = key
                if not args.direct_only:
                    workdir = Path(tmp) / name
                    workdir.mkdir()
                    gateway, gw_proc, gw_key = start_gateway(args, procs, env, workdir, up_port, models, key)
                    sampler = RssSampler(gw_proc.pid)
                    meta.setdefault("gateway_idle_rss_mb", {})[name] = round(rss_bytes(sampler.pids) / MIB, 1)
                try:
                    with sampler or contextlib.nullcontext():
                        r = run_scenario(
                            SCENARIOS[name], upstream, gateway, gw_key, args.duration, sampler, py_spy
                        )
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    r = ScenarioResult(SCENARIOS[name], error=str(exc))
                finally:
                    if gw_proc is not None:
                        procs.stop(gw_proc)
                if args.litellm and name == "small" and r.error is None:
                    measure_litellm(r, procs, env, Path(tmp) / name, up_port, models, key, args.duration)
                if args.floor and name in FLOOR_SCENARIOS and r.error is None:
                    measure_floor(r, procs, env, up_port, key, args.duration)
                results.append(r)
                if not r.passed and not args.keep_going and not args.direct_only:
                    print(f"[{name}] did not pass; stopping (use --keep-going to run the rest)")
                    break
        except KeyboardInterrupt:
            print("\ninterrupted", file=sys.stderr)
            meta["interrupted"] = True
        finally:
            procs.stop_all()
    meta["loadavg_1m_after"] = round(os.getloadavg()[0], 2)
    if results:
        print_report(results)
        print(f"\nresults: {write_json(results, meta)}")
    return 0 if results and all(r.passed for r in results) else 1


def measure_litellm(
    r: ScenarioResult,
    procs: Procs,
    env: dict[str, str],
    workdir: Path,
    up_port: int,
    models: list[str],
    key: str,
    duration_s: float,
) -> None:
    """The same load through LiteLLM's proxy, alone on the machine like the gateway was."""
    workdir.mkdir(parents=True, exist_ok=True)
    log = RESULTS_DIR / "litellm.log"
    try:
        started = litellm_proxy.start(procs, env, workdir, up_port, models, key, log)
    except (RuntimeError, subprocess.SubprocessError) as exc:
        r.error = f"litellm: {exc}"
        return
    measured = measure_proxy(r, "litellm", started, procs, key, duration_s)
    if measured is not None:
        r.litellm, r.litellm_cpu_ms_per_req = measured
        r.targets = evaluate(r)


def measure_floor(
    r: ScenarioResult, procs: Procs, env: dict[str, str], up_port: int, key: str, duration_s: float
) -> None:
    """The same load through the floor proxy (bench/floor_proxy.py), started fresh like the gateway."""
    try:
        started = floor_proxy.start(procs, env, up_port, RESULTS_DIR / "floor.log")
    except (RuntimeError, subprocess.SubprocessError) as exc:
        r.error = f"floor: {exc}"
        return
    measured = measure_proxy(r, "floor", started, procs, key, duration_s)
    if measured is not None:
        r.floor, r.floor_cpu_ms_per_req = measured


def measure_proxy(
    r: ScenarioResult,
    label: str,
    started: tuple[str, subprocess.Popen[bytes]],
    procs: Procs,
    key: str,
    duration_s: float,
) -> tuple[HeyResult, float | None] | None:
    """The scenario's load through another proxy in front of the same upstream, then stop it:
    what hey measured and the proxy's CPU per answered request (None: its smoke request failed)."""
    base, proc = started
    sc = r.scenario
    try:
        if problem := smoke(base, sc.model, key):
            r.error = f"{label} smoke request failed: {problem}"
            return None
        print(f"[{sc.name}] {label}: {sc.model}, c={sc.concurrency}", flush=True)
        body = request_body(sc)
        url = base + GEN_PATH
        sampler = RssSampler(proc.pid)
        with sampler:
            if sc.warmup_s:
                run_hey(url, body, key, sc.concurrency, duration_s=sc.warmup_s, timeout_s=60)
            cpu0 = cpu_seconds(sampler.pids)
            out = measured_load(url, body, key, sc, duration_s, max(60, sc.timeout_s))
            cpu_ms = (cpu_seconds(sampler.pids) - cpu0) * 1000 / out.ok if out.ok else None
        return out, cpu_ms
    finally:
        procs.stop(proc)


def start_gateway(
    args: argparse.Namespace,
    procs: Procs,
    base_env: dict[str, str],
    tmp: Path,
    up_port: int,
    models: list[str],
    key: str,
) -> tuple[str, subprocess.Popen[bytes], str]:
    config = tmp / "imagegate.toml"
    config.write_text(gateway_toml(up_port, models, billed=args.billed))
    env = {
        **base_env,
        "IMAGEGATE_DATA_DIR": str(tmp / "data"),
        "IMAGEGATE_ADMIN_KEY": key,
        "IMAGEGATE_RESPONSE_FORMAT": "b64_json",
        "IMAGEGATE_DEMO": "1",
        "IMAGEGATE_LOG_LEVEL": "INFO",  # the per-request log line is part of the cost
    }
    (tmp / "data").mkdir()  # `serve` migrates the fresh SQLite database in here itself
    port = free_port()
    log = RESULTS_DIR / "gateway.log"
    cmd = [args.imagegate, "serve", "--host", LOOPBACK, "--port", str(port), "--config", str(config)]
    if args.workers > 1:
        cmd += ["--workers", str(args.workers)]
    if args.server:
        cmd += ["--server", args.server]
    proc = procs.start(cmd, env, log)
    base = f"http://{LOOPBACK}:{port}"
    wait_healthy(base, proc, log)
    if args.billed:
        key = create_billed_key(args, env, config)
    return base, proc, key


def create_billed_key(args: argparse.Namespace, env: dict[str, str], config: Path) -> str:
    """A key with a (large) quota: every request through it is held, settled and logged."""
    out = subprocess.run(
        [
            args.imagegate,
            "keys",
            "create",
            "--name",
            "bench",
            "--quota-usd",
            "1000000",
            "--config",
            str(config),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return out.stdout.strip().splitlines()[-1]


if __name__ == "__main__":
    sys.exit(main())
