"""``imagegate ledger release-stale``: give back the holds of processes that died mid-request.

``serve`` does this by itself at start-up and every ``IMAGEGATE_HOLD_LEASE_S / 2``; the command is
for a database no gateway is running against, or to see at once what was stuck. Holds of a
live process (whose lease is current) are never touched.
"""

from __future__ import annotations

import argparse
from typing import Any

from imagegate.billing.leases import ReleasedHold, release_stale
from imagegate.cli.common import add_config_option, run_with_engine
from imagegate.money import format_usd


def add_parser(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser("ledger", help="the quota ledger")
    commands = parser.add_subparsers(dest="ledger_command", metavar="COMMAND", required=True)
    stale = commands.add_parser(
        "release-stale",
        help="release the holds of dead processes (serve also does it by itself)",
        description="Release the holds of processes whose lease ran out, and log their requests "
        "as aborted (status 499).",
    )
    add_config_option(stale)
    stale.set_defaults(handler=release_stale_command)


def release_stale_command(args: argparse.Namespace) -> int:
    released: list[ReleasedHold] = run_with_engine(args, release_stale)
    for hold in released:
        print(f"released {hold.describe()}")
    total = sum(hold.amount_micros for hold in released)
    print(f"{len(released)} stale hold(s) released, ${format_usd(total)} given back")
    return 0
