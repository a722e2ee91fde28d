"""Async tasks under a burst: N task submissions at once against an instant fake upstream.

    PYTHONPATH=. .venv/bin/python bench/tasks.py                          # SQLite, one process
    PYTHONPATH=. .venv/bin/python bench/tasks.py --postgres --processes 1
    PYTHONPATH=. .venv/bin/python bench/tasks.py --postgres --processes 2
    PYTHONPATH=. .venv/bin/python bench/tasks.py --postgres --compare     # 1 then 2 processes

Each run: the fake upstream (``bench-small``, answered at once), ``imagegate serve`` process(es)
on one database, a quota-limited key (every task is held, settled and logged), then
``--tasks`` POSTs to /v1/images/generations/async from ``--concurrency`` clients, spread over
the processes. Measured: submit latency (p50/p99), time until every task ended (throughput in
tasks/s from the first submit), peak RSS of each gateway process tree. Checked from the
database: every task completed, each was claimed once and charged once, balance = ledger.
Targets: submit p99 ≤ 50 ms, RSS ≤ 300 MB; with --compare, two processes ≥ 1.6× one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
from common import LOOPBACK
from procs import Procs, clean_env, free_port, raise_nofile_limit, wait_healthy
from sampling import RssSampler, box_cpu_ticks, busy_pct, cpu_seconds
from scratch_db import scratch_database
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine

from imagegate.db.tables import ApiKeyRow, LedgerRow
from imagegate.db.tasks_tables import TaskRow

HERE = Path(__file__).resolve().parent
ADMIN_KEY = "sk-bench-admin-" + uuid.uuid4().hex


def gateway_toml(upstream_port: int) -> str:
    return f"""
[[channels]]
name = "bench"
provider = "openai"
base_url = "http://{LOOPBACK}:{upstream_port}/v1"
api_key = "bench"
models = ["bench-small"]
timeout_s = 60

[models."bench-small"]
sizes = ["1024x1024", "auto"]
price = {{ per_image = {{ default = 0.0001 }} }}
"""


async def submit_all(bases: list[str], key: str, count: int, concurrency: int) -> tuple[list[float], float]:
    latencies: list[float] = []
    failures: list[str] = []
    queue = iter(range(count))
    body = json.dumps(
        {"model": "bench-small", "prompt": "bench", "size": "1024x1024", "response_format": "url"}
    )
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency * 2)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def client() -> None:
            for index in queue:
                base = bases[index % len(bases)]
                started = time.perf_counter()
                async with session.post(
                    f"{base}/v1/images/generations/async", data=body, headers=headers
                ) as r:
                    await r.read()
                    if r.status != 202:
                        failures.append(f"{r.status} {await r.text()}"[:300])
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
    if failures:
        raise SystemExit(f"{len(failures)} submits failed, e.g. {failures[0]}")
    return latencies, started


async def wait_all_ended(database_url: str, timeout_s: float) -> dict[str, int]:
    """Every task's status once none is queued or processing (or at the timeout).

    Polls with a count of the unfinished ones, which the queue's index answers from its
    shrinking ranges; a count of every status each time scanned the whole table five times a
    second, PostgreSQL CPU the gateways were being measured against.
    """
    engine = create_async_engine(database_url)
    deadline = time.monotonic() + timeout_s
    unfinished = select(func.count()).where(TaskRow.status.in_(("queued", "processing")))
    by_status = select(TaskRow.status, func.count()).group_by(TaskRow.status)
    try:
        while True:
            async with engine.connect() as connection:
                # Every task was submitted before this runs: none unfinished means all ended.
                if (await connection.execute(unfinished)).scalar_one() == 0 or time.monotonic() > deadline:
                    return {status: int(n) for status, n in (await connection.execute(by_status)).all()}
            await asyncio.sleep(0.2)
    finally:
        await engine.dispose()


async def check_money(database_url: str) -> dict[str, object]:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            claims = dict(
                (
                    await connection.execute(select(TaskRow.claims, func.count()).group_by(TaskRow.claims))
                ).all()
            )
            charges = (
                await connection.execute(
                    select(func.count(), func.count(func.distinct(LedgerRow.request_id))).where(
                        LedgerRow.kind == "charge"
                    )
                )
            ).one()
            key = (
                await connection.execute(
                    select(ApiKeyRow.id, ApiKeyRow.balance_micros).where(ApiKeyRow.name == "bench")
                )
            ).one()
            total = (
                await connection.execute(
                    select(func.sum(LedgerRow.amount_micros)).where(LedgerRow.key_id == key[0])
                )
            ).scalar_one()
    finally:
        await engine.dispose()
    return {
        "claims_per_task": {int(k): int(v) for k, v in claims.items()},
        "charges": int(charges[0]),
        "tasks_charged": int(charges[1]),
        "balance_equals_ledger": int(key[1]) == int(total),
    }


async def create_key(base: str) -> str:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{base}/admin/keys",
            json={"name": "bench", "quota_usd": "1000000"},
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        ) as response,
    ):
        data = await response.json()
        if response.status != 201:
            raise SystemExit(f"creating the key failed: {data}")
        return str(data["key"])


def run_once(args: argparse.Namespace, processes: int) -> dict[str, object]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-tasks-"))
    with scratch_database(postgres=args.postgres, prefix="bench_tasks", folder=tmp) as database_url:
        return run_on(args, processes, tmp, database_url)


def run_on(args: argparse.Namespace, processes: int, tmp: Path, database_url: str) -> dict[str, object]:
    procs = Procs()
    try:
        env = clean_env()
        up_port = free_port()
        upstream = procs.start(
            [sys.executable, str(HERE / "fake_upstream.py"), "--port", str(up_port)],
            env,
            tmp / "upstream.log",
        )
        wait_healthy(f"http://{LOOPBACK}:{up_port}", upstream, tmp / "upstream.log")
        config = tmp / "imagegate.toml"
        config.write_text(gateway_toml(up_port))
        gw_env = {
            **env,
            "IMAGEGATE_DATABASE_URL": database_url,
            "IMAGEGATE_ADMIN_KEY": ADMIN_KEY,
            "IMAGEGATE_DEMO": "0",
            "IMAGEGATE_LOG_LEVEL": "WARNING",
            "IMAGEGATE_TASK_CONCURRENCY": str(args.task_concurrency),
            "IMAGEGATE_TASK_POLL_S": "0.2",
        }
        bases, gateways = [], []
        for index in range(processes):
            port = free_port()
            log = tmp / f"gateway-{index}.log"
            proc_env = {**gw_env, "IMAGEGATE_DATA_DIR": str(tmp / f"data-{index}")}
            cmd = [args.imagegate, "serve", "--host", LOOPBACK, "--port", str(port), "--config", str(config)]
            gateways.append(procs.start(cmd, proc_env, log))
            bases.append(f"http://{LOOPBACK}:{port}")
            wait_healthy(bases[-1], gateways[-1], log)  # one at a time: each migrates on start
        key = asyncio.run(create_key(bases[0]))
        samplers = [RssSampler(proc.pid) for proc in gateways]
        for sampler in samplers:
            sampler.__enter__()
        box_before, cpu_before = box_cpu_ticks(), [cpu_seconds(sampler.pids) for sampler in samplers]
        latencies, started = asyncio.run(submit_all(bases, key, args.tasks, args.concurrency))
        submitted = time.perf_counter() - started
        statuses = asyncio.run(wait_all_ended(database_url, args.timeout))
        elapsed = time.perf_counter() - started
        box_after = box_cpu_ticks()
        gateway_cpu = [
            cpu_seconds(sampler.pids) - cpu for sampler, cpu in zip(samplers, cpu_before, strict=True)
        ]
        peaks = [sampler.take_peak() for sampler in samplers]
        for sampler in samplers:
            sampler.__exit__(None, None, None)
        latencies.sort()
        result: dict[str, object] = {
            "database": "postgresql" if args.postgres else "sqlite",
            "processes": processes,
            "tasks": args.tasks,
            "statuses": statuses,
            "submit_s": round(submitted, 2),
            "submit_p50_ms": round(statistics.median(latencies) * 1000, 1),
            "submit_p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 1),
            "all_ended_s": round(elapsed, 2),
            "throughput_tasks_per_s": round(args.tasks / elapsed, 1),
            "peak_rss_mb": [round(peak / 2**20, 1) for peak in peaks],
            # Whether the machine had CPU to spare: with every core busy, a second process
            # can only take CPU from the first one, the database and the client.
            "box_cpu_busy_pct": busy_pct(box_before, box_after),
            "gateway_cpu_ms_per_task": round(sum(gateway_cpu) * 1000 / args.tasks, 2),
            **asyncio.run(check_money(database_url)),
        }
        return result
    finally:
        procs.stop_all()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=50, help="clients submitting at once")
    parser.add_argument("--task-concurrency", type=int, default=16, help="IMAGEGATE_TASK_CONCURRENCY")
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--compare", action="store_true", help="1 then 2 processes, and the ratio")
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--imagegate", default=str(Path(sys.executable).with_name("imagegate")))
    args = parser.parse_args()
    raise_nofile_limit()
    runs = [run_once(args, n) for n in ((1, 2) if args.compare else (args.processes,))]
    ok = True
    for run in runs:
        print(json.dumps(run))
        ended_ok = run["statuses"] == {"completed": args.tasks}
        once = (
            run["claims_per_task"] == {1: args.tasks} and run["charges"] == run["tasks_charged"] == args.tasks
        )
        ok &= ended_ok and once and bool(run["balance_equals_ledger"])
        ok &= float(run["submit_p99_ms"]) <= 50 and max(run["peak_rss_mb"]) <= 300  # type: ignore[arg-type]
    if args.compare:
        ratio = float(runs[1]["throughput_tasks_per_s"]) / float(runs[0]["throughput_tasks_per_s"])  # type: ignore[arg-type]
        print(json.dumps({"two_over_one": round(ratio, 2), "target": 1.6}))
        ok &= ratio >= 1.6
    print("PASS" if ok else "FAIL (indicative: see the figures above)")
    return 0 if ok else 1


if __name__ == "__main__":
    os.chdir(HERE)
    sys.exit(main())
