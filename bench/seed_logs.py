"""Fill a database with N request-log rows (default 1,000,000) and time every console page on it.

    PYTHONPATH=. python bench/seed_logs.py --data-dir /tmp/ig-bench --rows 1000000

Rows spread over 90 days, 200 keys, 6 models, 5 channels; ~4% fail; one row in 20 has a
request detail (prompt and an output image link) for the gallery. Then the console's pages are
rendered in-process (ASGI, no network) as an admin and as a client key, and each page's server
time is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import insert

from imagegate.app import create_app
from imagegate.db import log_stats, migrate
from imagegate.db.engine import create_engine
from imagegate.db.keys import KeyStore
from imagegate.db.request_logs import RequestLogRow
from imagegate.db.tables import RequestDetailRow
from imagegate.settings import load_settings

MODELS = ["gpt-image-2", "gpt-image-1.5", "demo", "dall-e-3", "gemini-2.5-flash-image", "gpt-image-2-chat"]
CHANNELS = ["openai-main", "openai-backup", "gemini", "demo", "azure"]
SIZES = ["1024x1024", "1536x1024", "1024x1536", "2048x2048", "auto"]
PAGES = [
    "overview",
    "playground",
    "models",
    "usage",
    "logs",
    "logs?view=gallery",
    "logs?status=error",
    "logs?model=dall-e-3&size=1024x1024",
    "tasks",
    "overview?days=365",
    "usage?days=365",
    "usage.csv",
    "logs/{first}",
    "logs?cursor={cursor}",
    "keys",
    "groups",
    "channels",
    "prices",
]


async def seed(url: str, rows: int, key_ids: list[str]) -> None:
    engine = create_engine(url)
    rng = random.Random(7)
    now = datetime.now(UTC)
    batch: list[dict[str, object]] = []
    details: list[dict[str, object]] = []
    started = time.perf_counter()
    try:
        for index in range(rows):
            moment = now - timedelta(seconds=rng.random() * 90 * 86400)
            failed = rng.random() < 0.04
            request_id = f"req_{index:08x}{secrets.token_hex(4)}"
            model = rng.choice(MODELS)
            batch.append(
                {
                    "id": request_id,
                    "time": moment,
                    "method": "POST",
                    "endpoint": "/v1/images/generations",
                    "key_id": rng.choice(key_ids),
                    "model": model,
                    "channel": rng.choice(CHANNELS),
                    "n": 1,
                    "size": rng.choice(SIZES),
                    "quality": "high",
                    "status": 502 if failed else 200,
                    "latency_ms": rng.uniform(800, 60000),
                    "cost_micros": 0 if failed else rng.randint(10_000, 200_000),
                    "error_code": "upstream_error" if failed else None,
                    "error_message": "upstream said <b>no</b>" if failed else None,
                    "stream": False,
                }
            )
            if not failed and index % 20 == 0:
                details.append(
                    {
                        "request_id": request_id,
                        "time": moment,
                        "prompt": f"海报 {index}",
                        "params": {"size": "1024x1024"},
                        "outputs": [{"url": f"/files/20260101/{index:064x}.png"}],
                    }
                )
            if len(batch) == 20_000:
                async with engine.begin() as connection:
                    await connection.execute(insert(RequestLogRow), batch)
                    if details:
                        await connection.execute(insert(RequestDetailRow), details)
                batch, details = [], []
                print(f"\r{index + 1:,} rows ({time.perf_counter() - started:.0f} s)", end="", flush=True)
        if batch:
            async with engine.begin() as connection:
                await connection.execute(insert(RequestLogRow), batch)
                if details:
                    await connection.execute(insert(RequestDetailRow), details)
        print()
    finally:
        await engine.dispose()


async def roll_up(url: str) -> None:
    """What `serve` does in the background at start-up: sum the finished days once."""
    engine = create_engine(url)
    try:
        started = time.perf_counter()
        days = await log_stats.roll_up(engine)
        print(f"summed {days} days in {time.perf_counter() - started:.1f} s (once; later days one by one)")
    finally:
        await engine.dispose()


async def make_keys(url: str) -> tuple[str, str, list[str]]:
    engine = create_engine(url)
    try:
        store = KeyStore(engine)
        _, admin = await store.create("bench-admin", admin=True)
        client_key, client = await store.create("bench-client")
        ids = [client_key.id] + [(await store.create(f"k{i}"))[0].id for i in range(199)]
    finally:
        await engine.dispose()
    return admin, client, ids


async def time_pages(settings_kwargs: dict[str, object], admin: str, client: str, rounds: int) -> None:
    app = create_app(load_settings(**settings_kwargs))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        for who, secret in (("admin", admin), ("client", client)):
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:
                form = await http.get("/console/login")
                csrf = form.text.split('name="csrf" value="')[1].split('"')[0]
                await http.post("/console/login", data={"key": secret, "csrf": csrf})
                listing = (await http.get("/console/logs")).text
                first = listing.split('href="/console/logs/', 1)[-1].split('"', 1)[0]
                cursor = listing.split("cursor=", 1)[-1].split('"', 1)[0].replace("&amp;", "&")
                for template in PAGES:
                    name = template.format(first=first, cursor=cursor)
                    if not first.startswith("req_") and "{" in template:
                        continue  # this key has no requests (a --skip-seed run makes new keys)
                    times = []
                    status = 0
                    for _ in range(rounds):
                        begin = time.perf_counter()
                        answer = await http.get(f"/console/{name}")
                        times.append((time.perf_counter() - begin) * 1000)
                        status = answer.status_code
                    print(
                        f"{who:7} {template:40} {status}  median {sorted(times)[len(times) // 2]:7.1f} ms"
                        f"  max {max(times):7.1f} ms"
                    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", default="/tmp/imagegate-bench-console")
    parser.add_argument("--database-url", default="")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-seed", action="store_true")
    args = parser.parse_args()
    Path(args.data_dir).mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, object] = {"data_dir": Path(args.data_dir), "log_level": "WARNING"}
    if args.database_url:
        kwargs["database_url"] = args.database_url
    settings = load_settings(**kwargs)
    url = settings.resolved_database_url
    migrate.upgrade(url)
    admin, client, ids = asyncio.run(make_keys(url))
    # The client key that owns 1/200 of the seeded rows; kept beside the throwaway bench database
    # so a --skip-seed run times the same key's pages.
    client_file = Path(args.data_dir) / "bench-client-key"
    if not args.skip_seed:
        asyncio.run(seed(url, args.rows, ids))
        client_file.write_text(client)
    elif client_file.exists():
        client = client_file.read_text().strip()
    asyncio.run(roll_up(url))
    asyncio.run(time_pages(kwargs, admin, client, args.rounds))


if __name__ == "__main__":
    main()
