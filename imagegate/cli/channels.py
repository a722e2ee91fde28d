"""``imagegate channels list|test``: see the configured channels and try one for real.

``channels test NAME`` sends one tiny real request (the channel's cheapest size, low quality)
through the channel's provider, prints the latency and OK or the error, and exits 1 on failure::

    imagegate channels test openai-main --model gpt-image-1
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from imagegate.cli.common import CliError, add_config_option, settings_from
from imagegate.errors import GatewayError
from imagegate.http import HttpClients
from imagegate.providers.registry import Catalog, Channel
from imagegate.services.channel_check import CheckResult, check_channel
from imagegate.services.routing import ChannelRouter
from imagegate.settings import Settings

T = TypeVar("T")


def add_parser(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser("channels", help="list channels and test them with a real request")
    commands = parser.add_subparsers(dest="channels_command", metavar="COMMAND", required=True)

    listing = commands.add_parser("list", help="list the configured channels")
    add_config_option(listing)
    listing.set_defaults(handler=list_command)

    test = commands.add_parser("test", help="send one tiny real request through a channel")
    test.add_argument("name", metavar="NAME", help="the channel's name (see: imagegate channels list)")
    test.add_argument("--model", metavar="M", help="a model the channel serves (default: its first)")
    add_config_option(test)
    test.set_defaults(handler=test_command)


def list_command(args: argparse.Namespace) -> int:
    channels = _with_router(settings_from(args), lambda router: _channels(router))
    print(format_table(channels))
    return 0


def test_command(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    try:
        result = _with_router(settings, lambda router: check_channel(router, args.name, args.model))
    except GatewayError as exc:  # an unknown channel or model: the command line's mistake
        raise CliError(exc.message, exit_code=2) from exc
    print(format_result(result))
    return 0 if result.ok else 1


def format_result(result: CheckResult) -> str:
    target = f"channel {result.channel}, model {result.model}"
    if result.upstream_model != result.model:
        target += f" (upstream {result.upstream_model})"
    if result.ok:
        images = "image" if result.images == 1 else "images"
        return f"{target}: OK in {result.latency_ms:.0f} ms ({result.images} {images})"
    error = result.error or {}
    return f"{target}: ERROR after {result.latency_ms:.0f} ms: {error.get('code')}: {error.get('message')}"


def format_table(channels: list[Channel]) -> str:
    header = ("NAME", "PROVIDER", "PRIORITY", "WEIGHT", "MAX_CONCURRENCY", "TIMEOUT_S", "MODELS")
    rows = [
        (
            c.name,
            c.config.provider,
            str(c.config.priority),
            str(c.config.weight),
            str(c.config.max_concurrency or "-"),
            f"{c.config.timeout_s:g}",
            ",".join(c.config.models) or "-",
        )
        for c in channels
    ]
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in [header, *rows]]
    return "\n".join(line.rstrip() for line in lines)


async def _channels(router: ChannelRouter) -> list[Channel]:
    return list(router.catalog.channels)


def _with_router(settings: Settings, action: Callable[[ChannelRouter], Awaitable[T]]) -> T:
    """Run ``action`` against a router built from settings, as the gateway would build it."""

    async def run() -> T:
        http = HttpClients.create(settings)
        try:
            catalog = Catalog(settings, http)
        except ValueError as exc:
            await http.aclose()
            raise CliError(f"invalid configuration: {exc}", exit_code=2) from exc
        try:
            return await action(ChannelRouter.from_settings(catalog, settings))
        finally:
            await catalog.aclose()
            await http.aclose()

    return asyncio.run(run())
