"""``imagegate groups create|list|update|delete``: token groups from the shell.

    imagegate groups create team-a --multiplier 0.8 --models gpt-image-2,gpt-image-1 --rpm 60
    imagegate groups update team-a --rpm 120 --models '*'
    imagegate keys create --name ci --group team-a --quota-usd 25

A group is named by its name or id. ``--models '*'`` and ``--rpm 0`` lift a restriction.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from imagegate.cli.common import CliError, add_config_option, run_with_engine
from imagegate.db.groups import Group, GroupStore

T = TypeVar("T")


def add_parser(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser("groups", help="manage token groups (shared prices, models, limits)")
    commands = parser.add_subparsers(dest="groups_command", metavar="COMMAND", required=True)

    create = commands.add_parser("create", help="create a group")
    create.add_argument("name", metavar="NAME")
    _add_fields(create)
    create.set_defaults(handler=create_command)

    listing = commands.add_parser("list", help="list groups")
    add_config_option(listing)
    listing.set_defaults(handler=list_command)

    change = commands.add_parser("update", help="change a group")
    change.add_argument("group", metavar="GROUP", help="name or id")
    change.add_argument("--name", help="rename the group")
    _add_fields(change)
    change.set_defaults(handler=update_command)

    remove = commands.add_parser("delete", help="delete a group that has no keys")
    remove.add_argument("group", metavar="GROUP", help="name or id")
    add_config_option(remove)
    remove.set_defaults(handler=delete_command)


def _add_fields(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--multiplier", metavar="X", help="price multiplier for its keys (default 1)")
    parser.add_argument("--models", metavar="a,b", help="models its keys may use ('*': all, the default)")
    parser.add_argument("--rpm", type=int, metavar="N", help="default requests per minute (0: no limit)")
    parser.add_argument(
        "--response-format",
        choices=["url", "b64_json", "default"],
        help="for its requests that do not say ('default': the gateway's)",
    )
    add_config_option(parser)


def create_command(args: argparse.Namespace) -> int:
    fields = _fields(args)
    group = _run(args, lambda store: store.create(args.name, **fields))
    print(f"Created group {group.id} ({group.name}).")
    print(format_table([group]))
    return 0


def list_command(args: argparse.Namespace) -> int:
    groups = _run(args, lambda store: store.list())
    if not groups:
        print("No groups yet. Create one with: imagegate groups create NAME")
        return 0
    print(format_table(groups))
    return 0


def update_command(args: argparse.Namespace) -> int:
    fields = _fields(args)
    if args.name is not None:
        fields["name"] = args.name
    if not fields:
        raise CliError("nothing to change: pass --name, --multiplier, --models or --rpm", exit_code=2)

    async def update(store: GroupStore) -> Group | None:
        group = await _find(store, args.group)
        return await store.update(group.id, **fields)

    group = _run(args, update)
    if group is None:
        raise CliError(f"no group {args.group!r} (see: imagegate groups list)")
    print(f"Updated group {group.id}.")
    print(format_table([group]))
    return 0


def delete_command(args: argparse.Namespace) -> int:
    async def delete(store: GroupStore) -> Group:
        group = await _find(store, args.group)
        await store.delete(group.id)
        return group

    group = _run(args, delete)
    print(f"Deleted group {group.id} ({group.name}).")
    return 0


def format_table(groups: list[Group]) -> str:
    header = ("ID", "NAME", "MULTIPLIER", "MODELS", "RPM")
    rows = [
        (
            group.id,
            group.name,
            format(group.price_multiplier, "f"),
            ",".join(group.models) if group.models is not None else "*",
            str(group.rpm) if group.rpm is not None else "-",
        )
        for group in groups
    ]
    return render_table(header, rows)


def render_table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in [header, *rows]
    ]
    return "\n".join(line.rstrip() for line in lines)


def _fields(args: argparse.Namespace) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if args.multiplier is not None:
        fields["price_multiplier"] = args.multiplier
    if args.models is not None:
        models = [name.strip() for name in args.models.split(",") if name.strip()]
        fields["models"] = None if models in ([], ["*"]) else models
    if args.rpm is not None:
        fields["rpm"] = args.rpm or None
    if args.response_format is not None:
        fields["response_format"] = None if args.response_format == "default" else args.response_format
    return fields


async def _find(store: GroupStore, ref: str) -> Group:
    group = await store.get(ref) or await store.get_by_name(ref)
    if group is None:
        raise CliError(f"no group {ref!r} (see: imagegate groups list)")
    return group


def _run(args: argparse.Namespace, action: Callable[[GroupStore], Awaitable[T]]) -> T:
    return run_with_engine(args, lambda engine: action(GroupStore(engine)))
