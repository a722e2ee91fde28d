"""What the subcommands share: the ``--config`` option, settings loading and the error type."""

from __future__ import annotations

import argparse
import asyncio
import tomllib
from collections.abc import Awaitable, Callable
from typing import TypeVar

from pydantic import ValidationError
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from imagegate.db import migrate
from imagegate.db.engine import create_engine
from imagegate.settings import Settings, load_settings

T = TypeVar("T")


class CliError(Exception):
    """A failure to report as one line on stderr with an exit status, without a traceback."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="F",
        help="TOML config file (default: $IMAGEGATE_CONFIG, else ./imagegate.toml when present)",
    )


def settings_from(args: argparse.Namespace) -> Settings:
    """Settings for a command, turning a bad config into a readable error."""
    try:
        return load_settings(config_file=getattr(args, "config", None))
    except FileNotFoundError as exc:
        raise CliError(str(exc), exit_code=2) from exc
    except tomllib.TOMLDecodeError as exc:
        raise CliError(f"config file is not valid TOML: {exc}", exit_code=2) from exc
    except ValidationError as exc:
        raise CliError(f"invalid configuration:\n{exc}", exit_code=2) from exc


def display_url(database_url: str) -> str:
    """The URL with any password masked, fit for a terminal or a log."""
    return make_url(database_url).render_as_string(hide_password=True)


def run_with_engine(args: argparse.Namespace, action: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    """Migrate the database (a no-op at head), then run ``action`` on an engine it owns."""
    url = settings_from(args).resolved_database_url
    migrate.upgrade(url)

    async def run() -> T:
        engine = create_engine(url)
        try:
            return await action(engine)
        except ValueError as exc:  # the stores' refusals: bad names, amounts, groups in use
            raise CliError(str(exc), exit_code=2) from exc
        finally:
            await engine.dispose()

    return asyncio.run(run())
