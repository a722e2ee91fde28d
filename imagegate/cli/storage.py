"""``imagegate storage gc [--dry-run]``: delete images past IMAGEGATE_IMAGE_RETENTION_DAYS.

``serve`` does the same in the background; this is for cron jobs, a first clean-up after turning
retention on, or seeing what would go (``--dry-run``). Deleting is idempotent, so running it beside
a serving sweeper is harmless.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from imagegate.cli.common import CliError, add_config_option, settings_from
from imagegate.storage.factory import open_store
from imagegate.storage.retention import GcReport, collect_garbage


def add_parser(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser("storage", help="manage the image store")
    commands = parser.add_subparsers(dest="storage_command", metavar="COMMAND", required=True)
    gc = commands.add_parser("gc", help="delete images past retention")
    gc.add_argument("--dry-run", action="store_true", help="count what would be deleted, delete nothing")
    gc.add_argument(
        "--days",
        type=int,
        metavar="N",
        help="keep N days of images (default: $IMAGEGATE_IMAGE_RETENTION_DAYS)",
    )
    add_config_option(gc)
    gc.set_defaults(handler=gc_command)


def gc_command(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    days = settings.image_retention_days if args.days is None else args.days
    if days < 0:
        raise CliError("--days must be 0 or more", exit_code=2)
    if days == 0:
        print("retention is off (IMAGEGATE_IMAGE_RETENTION_DAYS=0): nothing to delete")
        return 0
    try:
        store = open_store(settings)
    except ValueError as exc:
        raise CliError(str(exc)) from exc

    async def run() -> GcReport:
        try:
            return await collect_garbage(store, days, dry_run=args.dry_run)
        finally:
            await store.aclose()

    report = asyncio.run(run())
    print(describe(report))
    return 0


def describe(report: GcReport) -> str:
    verb = "would delete" if report.dry_run else "deleted"
    days = f" ({', '.join(report.days)})" if report.days else ""
    mib = report.bytes / (1024 * 1024)
    return f"{verb} {report.images} images, {mib:.1f} MiB, stored before {report.cutoff}{days}"
