"""The floor: the least an image proxy on the gateway's own stack does, for ``run.py --floor``.

uvicorn (uvloop, httptools) and one aiohttp session with no connection cap, as the gateway runs
them, and per request only what no gateway can skip: read the JSON body and the key, call the
upstream, parse its JSON, decode each image and open it with Pillow (format and size), answer
with the images. No auth table, quota, routing, log or metrics. A scenario's figures through
this proxy are what the stack itself allows on the machine, in the same run as the gateway's:
a target below the floor cannot be met by making the gateway's own code faster.

    .venv/bin/python bench/floor_proxy.py --port 8100 --upstream http://127.0.0.1:8000
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from common import BENCH_DIR, GEN_PATH, LOOPBACK
from procs import Procs, free_port, wait_healthy

Scope = dict[str, Any]


def app_for(upstream: str) -> Any:
    import aiohttp
    from PIL import Image

    session: aiohttp.ClientSession | None = None

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        nonlocal session
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
                else:
                    assert session is not None
                    await session.close()
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        if scope["path"] == "/healthz":
            await answer(send, 200, b"{}")
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if not dict(scope["headers"]).get(b"authorization"):
            await answer(send, 401, b'{"error":{"message":"no key"}}')
            return
        asked = json.loads(body)
        forwarded = {name: asked[name] for name in ("model", "prompt", "size") if name in asked}
        assert session is not None
        async with session.post(upstream + GEN_PATH, json=forwarded) as response:
            data = json.loads(await response.read())
        for item in data["data"]:
            with Image.open(io.BytesIO(base64.b64decode(item["b64_json"]))) as image:
                _ = image.format, image.size
        await answer(send, 200, json.dumps({"created": data["created"], "data": data["data"]}).encode())

    return app


async def answer(send: Any, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def start(
    procs: Procs, env: dict[str, str], upstream_port: int, log: Path
) -> tuple[str, subprocess.Popen[bytes]]:
    """A fresh floor proxy (an empty connection pool, like a freshly started gateway)."""
    port = free_port()
    upstream = f"http://{LOOPBACK}:{upstream_port}"
    command = [sys.executable, str(BENCH_DIR / "floor_proxy.py"), "--port", str(port), "--upstream", upstream]
    proc = procs.start(command, env, log)
    base = f"http://{LOOPBACK}:{port}"
    wait_healthy(base, proc, log)
    return base, proc


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="the fake upstream's base URL")
    args = parser.parse_args()
    import uvicorn

    uvicorn.run(
        app_for(args.upstream),
        host=LOOPBACK,
        port=args.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        backlog=2048,
    )


if __name__ == "__main__":
    main()
