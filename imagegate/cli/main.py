"""The ``imagegate`` command: ``serve``, ``keys create|list|revoke``, ``db upgrade``,
``ledger release-stale``, and the client commands ``generate | edit | chat | tasks`` that talk to a
running gateway.

imagegate serve --port 8080
imagegate keys create --name ci --models gpt-image-2 | tail -n 1
"""

from __future__ import annotations

import argparse
import sys

from imagegate import __version__
from imagegate.cli import channels, db, groups, keys, ledger, serve, storage, usage
from imagegate.cli.client import chat as client_chat
from imagegate.cli.client import edit as client_edit
from imagegate.cli.client import generate as client_generate
from imagegate.cli.client import tasks as client_tasks
from imagegate.cli.common import CliError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imagegate", description="A self-hosted, OpenAI-compatible image generation gateway."
    )
    parser.add_argument("--version", action="version", version=f"imagegate {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    serve.add_parser(subparsers)
    keys.add_parser(subparsers)
    db.add_parser(subparsers)
    channels.add_parser(subparsers)
    groups.add_parser(subparsers)
    usage.add_parser(subparsers)
    ledger.add_parser(subparsers)
    storage.add_parser(subparsers)
    # Client commands: they talk to a running gateway over HTTP.
    client_generate.add_parser(subparsers)
    client_edit.add_parser(subparsers)
    client_chat.add_parser(subparsers)
    client_tasks.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit status (argparse usage errors exit with 2 themselves)."""
    args = build_parser().parse_args(argv)
    try:
        status: int = args.handler(args)
    except CliError as exc:
        print(f"imagegate: error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    return status


if __name__ == "__main__":
    sys.exit(main())
