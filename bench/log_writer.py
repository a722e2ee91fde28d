"""The request-log writer alone: CPU and wall time per row, with the details a url answer keeps.

    PYTHONPATH=. .venv/bin/python bench/log_writer.py [--rows 10000] [--batch 500] [--postgres]

Writes ``--rows`` records (each with a detail: prompt, params, one output link) through
``RequestLogWriter`` into a fresh migrated database, in batches of ``--batch``, and prints this
process's CPU time and the wall time per row. SQLite by default; ``--postgres`` uses the local
server (a scratch database, dropped after).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import uvloop
from scratch_db import scratch_database

from imagegate.db import migrate
from imagegate.db.engine import create_engine
from imagegate.db.request_logs import RequestLogWriter
from imagegate.domain import new_request_id
from imagegate.observability import RequestDetail, RequestRecord


def records(count: int) -> list[RequestRecord]:
    made = []
    for _ in range(count):
        record = RequestRecord(
            request_id=new_request_id(),
            method="POST",
            endpoint="/v1/images/generations",
            status=200,
            latency_ms=12.0,
            model="bench-small",
            key_id="key_bench",
        )
        record.detail = RequestDetail(
            prompt="一只戴着帽子的猫",
            params={"size": "1024x1024", "n": 1, "quality": "auto"},
            outputs=[{"url": "/files/2026/12/01/x.png", "revised_prompt": None}],
        )
        made.append(record)
    return made


async def write(url: str, rows: int, batch: int) -> tuple[float, float]:
    engine = create_engine(url)
    writer = RequestLogWriter(engine, interval_s=3600, batch_size=batch)
    made = records(rows)
    cpu, wall = time.process_time(), time.perf_counter()
    for record in made:
        writer.submit(record, time.time())
    await writer.flush()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    await engine.dispose()
    return cpu / rows * 1e6, wall / rows * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--postgres", action="store_true")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-log-"))
    with scratch_database(postgres=args.postgres, prefix="bench_log", folder=folder) as url:
        migrate.upgrade(url)
        cpu_us, wall_us = uvloop.run(write(url, args.rows, args.batch))
        print(f"{args.rows} rows, batches of {args.batch}: CPU {cpu_us:.1f} us, wall {wall_us:.1f} us a row")


if __name__ == "__main__":
    main()
