"""``imagegate serve``: migrate, make sure someone can log in, then run the ASGI server.

The app itself is built by ``served_app`` (below) inside each worker process, so everything a
worker needs travels through ``IMAGEGATE_*`` environment variables. The server and the bounds
it puts on clients are in ``imagegate.server``.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from imagegate.cli import metrics_dir
from imagegate.cli.common import add_config_option, settings_from
from imagegate.db import migrate
from imagegate.db.engine import create_engine
from imagegate.db.keys import KeyStore
from imagegate.settings import Settings, load_settings

APP_FACTORY = "imagegate.cli.serve:served_app"
FIRST_KEY_NAME = "default"


def add_parser(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser("serve", help="run the gateway")
    parser.add_argument("--host", help="address to bind (default: $IMAGEGATE_HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to bind (default: $IMAGEGATE_PORT or 8080)")
    parser.add_argument("--workers", type=int, default=1, metavar="N", help="worker processes (default: 1)")
    parser.add_argument(
        "--server",
        choices=["uvicorn", "granian"],
        help="ASGI server (default: $IMAGEGATE_SERVER or uvicorn)",
    )
    add_config_option(parser)
    parser.set_defaults(handler=serve_command)


def serve_command(args: argparse.Namespace) -> int:
    # Only this command needs a server; keeps `imagegate keys …` quick to start.
    from imagegate.server.run import run_server

    _export_options(args)
    metrics_dir.prepare(args.workers)  # before any worker imports prometheus_client
    settings = settings_from(args)
    secret = bootstrap(settings)
    if secret is not None:
        print(first_key_banner(secret, settings.resolved_public_url), flush=True)
    return run_server(APP_FACTORY, settings, args.workers)


def served_app() -> Any:
    """The app as served: built from the environment, drained gracefully on shutdown."""
    from imagegate.app import create_app
    from imagegate.media import work
    from imagegate.server.drain import DrainingApp
    from imagegate.server.memory import return_large_blocks

    return_large_blocks()  # in every worker: images' big blocks go back to the OS when freed
    settings = load_settings()
    work.configure(settings.image_work_threads)
    return DrainingApp(create_app(settings), settings.shutdown_grace_s)


def bootstrap(settings: Settings) -> str | None:
    """Migrate the database; on a brand-new install, create a first key and return its secret.

    Without it a new user would have no way to call the API until they found `keys create`.
    Nothing is created when an admin key is configured or any active key exists.
    """
    url = settings.resolved_database_url
    migrate.upgrade(url)
    if settings.admin_key:
        return None

    async def ensure_key() -> str | None:
        engine = create_engine(url)
        try:
            store = KeyStore(engine)
            if await store.count_active():
                return None
            _, secret = await store.create(FIRST_KEY_NAME, admin=True)
            return secret
        finally:
            await engine.dispose()

    return migrate.run_coroutine_sync(ensure_key)


def first_key_banner(secret: str, public_url: str) -> str:
    rule = "=" * 72
    return "\n".join(
        [
            rule,
            "No API keys yet, so imagegate created an admin key. It is shown only this once:",
            "",
            f"    {secret}",
            "",
            f"Try it:  curl {public_url}/v1/models -H 'Authorization: Bearer {secret}'",
            f"Console:  open {public_url}/console and sign in with this key",
            "Manage keys with: imagegate keys list | create | revoke",
            rule,
        ]
    )


def _export_options(args: argparse.Namespace) -> None:
    # Worker processes build their own settings from the environment, so the command-line
    # options have to be there, not only in this process's Settings object.
    for value, variable in (
        (args.host, "IMAGEGATE_HOST"),
        (args.port, "IMAGEGATE_PORT"),
        (args.config, "IMAGEGATE_CONFIG"),
        (getattr(args, "server", None), "IMAGEGATE_SERVER"),
    ):
        if value is not None:
            os.environ[variable] = str(value)
