"""Run an ASGI app factory under uvicorn (the default) or granian, with the edge bounds.

Measured on the small-payload bench (bench/README.md, "ASGI server"), granian answered more
requests per second with a lower p50, but only uvicorn carries every bound here: a body
timeout, 408 answers, a 503 connection cap (all in its protocol class, ``uvicorn_edge``) and a
bounded grace on SIGTERM. So uvicorn is the default; ``IMAGEGATE_SERVER=granian`` (or
``serve --server granian``) runs granian with what it has: its own head timeout (at most
60 s, closing instead of answering 408) and a cap on requests in flight per worker (excess
connections wait in the backlog instead of getting 503); no body timeout.
"""

from __future__ import annotations

import logging
import math
import sys
from typing import TYPE_CHECKING

from imagegate.server.limits import EdgeLimits
from imagegate.settings import Settings

if TYPE_CHECKING:
    from uvicorn.config import Config

#: Load balancers keep idle connections up to 60 s; a shorter keep-alive here would race them.
KEEP_ALIVE_S = 75
BACKLOG = 4096


def uvicorn_config(app_factory: str, settings: Settings, limits: EdgeLimits, workers: int) -> Config:
    from imagegate.server.uvicorn_edge import EdgeConfig

    return EdgeConfig(
        app_factory,
        edge=limits,
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=workers,
        loop="uvloop",
        access_log=False,
        backlog=BACKLOG,
        timeout_keep_alive=KEEP_ALIVE_S,
        # Forwarded headers are the app's business (IMAGEGATE_TRUSTED_PROXIES); uvicorn's own
        # default would believe them from 127.0.0.1, i.e. from any same-host proxy.
        proxy_headers=False,
        timeout_graceful_shutdown=math.ceil(limits.shutdown_grace_s),
        log_level=settings.log_level.lower(),
    )


def run_uvicorn(app_factory: str, settings: Settings, limits: EdgeLimits, workers: int) -> int:
    from uvicorn.server import Server
    from uvicorn.supervisors import Multiprocess

    config = uvicorn_config(app_factory, settings, limits, workers)
    if workers == 1:
        config.load_app()
    server = Server(config=config)
    try:
        if workers > 1:
            Multiprocess(config, sockets=[config.bind_socket()]).run()
        else:
            server.run()
    except KeyboardInterrupt:
        pass
    return 0 if server.started or workers > 1 else 3


def run_granian(app_factory: str, settings: Settings, limits: EdgeLimits, workers: int) -> int:
    try:
        from granian.constants import HTTPModes, Interfaces, Loops
        from granian.http import HTTP1Settings
        from granian.log import LogLevels
        from granian.server import Server
    except ImportError:
        sys.exit("granian is not installed: pip install 'imagegate[granian]'")

    if limits.header_timeout_s > 60:
        logging.getLogger("imagegate.server").warning("granian's head timeout is at most 60 s")
    server = Server(
        app_factory,
        address=settings.host,
        port=settings.port,
        interface=Interfaces.ASGI,
        http=HTTPModes.http1,
        workers=workers,
        loop=Loops.uvloop,
        backlog=BACKLOG,
        backpressure=limits.max_connections,
        http1_settings=HTTP1Settings(header_read_timeout=int(min(limits.header_timeout_s, 60) * 1000)),
        log_level=LogLevels(settings.log_level.lower()),
        log_access=False,
        factory=True,
        workers_kill_timeout=math.ceil(limits.shutdown_grace_s) + 15 if limits.shutdown_grace_s else None,
    )
    server.serve()
    return 0


RUNNERS = {"uvicorn": run_uvicorn, "granian": run_granian}


def run_server(app_factory: str, settings: Settings, workers: int) -> int:
    limits = EdgeLimits.from_settings(settings)
    runner = RUNNERS[settings.server]
    code = runner(app_factory, settings, limits, workers)
    sys.stdout.flush()
    return code
