"""``imagegate db upgrade``: bring the database schema to the newest revision."""

from __future__ import annotations

import argparse
from typing import Any

from imagegate.cli.common import add_config_option, display_url, settings_from
from imagegate.db import migrate


def add_parser(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser("db", help="manage the database")
    commands = parser.add_subparsers(dest="db_command", metavar="COMMAND", required=True)
    upgrade = commands.add_parser("upgrade", help="apply pending migrations (safe to repeat)")
    add_config_option(upgrade)
    upgrade.set_defaults(handler=upgrade_command)


def upgrade_command(args: argparse.Namespace) -> int:
    url = settings_from(args).resolved_database_url
    migrate.upgrade(url)
    print(f"database {display_url(url)} is at revision {migrate.current_revision(url)}")
    return 0
