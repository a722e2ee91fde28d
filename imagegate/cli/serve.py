"""``imagegate serve``: migrate, make sure someone can log in, then run uvicorn.

The app itself is built by ``imagegate.app:create_app_from_env`` inside each worker process,
so everything a worker needs travels through ``IMAGEGATE_*`` environment variables.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from imagegate.cli.common import add_config_option, settings_from
from imagegate.db import migrate
from imagegate.db.engine import create_engine
from imagegate.db.keys import KeyStore
from imagegate.settings import Settings

APP_FACTORY = "imagegate.app:create_app_from_env"
FIRST_KEY_NAME = "default"


def add_parser(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser("serve", help="run the gateway")
    parser.add_argument("--host", help="address to bind (default: $IMAGEGATE_HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to bind (default: $IMAGEGATE_PORT or 8080)")
    parser.add_argument("--workers", type=int, default=1, metavar="N", help="worker processes (default: 1)")
    add_config_option(parser)
    parser.set_defaults(handler=serve_command)


def serve_command(args: argparse.Namespace) -> int:
    import uvicorn  # only this command needs it; keeps `imagegate keys …` quick to start

    _export_options(args)
    settings = settings_from(args)
    secret = bootstrap(settings)
    if secret is not None:
        print(first_key_banner(secret, settings.resolved_public_url), flush=True)
    uvicorn.run(
        APP_FACTORY,
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=args.workers,
        loop="uvloop",
        http="httptools",
        access_log=False,
        backlog=4096,
        timeout_keep_alive=75,
        log_level=settings.log_level.lower(),
    )
    return 0


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
    ):
        if value is not None:
            os.environ[variable] = str(value)
