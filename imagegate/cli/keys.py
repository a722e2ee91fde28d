"""``imagegate keys create|list|revoke``: manage client API keys from the shell.

    imagegate keys create --name ci --group team-a --quota-usd 25 --models gpt-image-2 --rpm 60 --expires 30d

Every command first migrates the database (a no-op at head), so it works on a fresh data dir.
``keys create`` prints the secret as the last line of stdout, so scripts can take it with
``imagegate keys create --name ci | tail -n 1``.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from imagegate.cli.common import CliError, add_config_option, run_with_engine
from imagegate.db.keys import ApiKey, KeyStore
from imagegate.money import format_usd

T = TypeVar("T")

_DURATION_UNITS = {"d": timedelta(days=1), "h": timedelta(hours=1), "w": timedelta(weeks=1)}


def add_parser(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser("keys", help="manage client API keys")
    commands = parser.add_subparsers(dest="keys_command", metavar="COMMAND", required=True)

    create = commands.add_parser("create", help="create a key and print its secret (shown once)")
    create.add_argument("--name", required=True, help="a label for the key, e.g. who uses it")
    create.add_argument("--models", metavar="a,b", help="comma-separated models it may use (default: all)")
    create.add_argument("--group", metavar="G", help="the group (name or id) it belongs to")
    create.add_argument("--quota-usd", metavar="X", help="spending limit in USD (default: unlimited)")
    create.add_argument("--rpm", type=int, metavar="N", help="requests per minute (default: the group's)")
    create.add_argument(
        "--response-format",
        choices=["url", "b64_json"],
        help="for its requests that do not say (default: the group's, else the gateway's)",
    )
    create.add_argument(
        "--expires", metavar="WHEN", help="expiry: a date (2027-01-01), a UTC time, or from now (30d, 12h)"
    )
    create.add_argument(
        "--admin", action="store_true", help="an admin key: the admin API and the console's admin pages"
    )
    add_config_option(create)
    create.set_defaults(handler=create_command)

    listing = commands.add_parser("list", help="list keys, revoked ones included")
    add_config_option(listing)
    listing.set_defaults(handler=list_command)

    revoke = commands.add_parser("revoke", help="revoke a key for good")
    revoke.add_argument("key_id", metavar="KEY_ID")
    add_config_option(revoke)
    revoke.set_defaults(handler=revoke_command)


def create_command(args: argparse.Namespace) -> int:
    models = parse_models(args.models)
    expires_at = parse_expiry(args.expires) if args.expires else None
    try:
        key, secret = _with_store(
            args,
            lambda store: store.create(
                args.name,
                models,
                group=args.group,
                quota_usd=args.quota_usd,
                rpm=args.rpm,
                expires_at=expires_at,
                response_format=args.response_format,
                admin=args.admin,
            ),
        )
    except ValueError as exc:
        raise CliError(str(exc), exit_code=2) from exc
    kind = "admin key" if key.admin else "key"
    print(f"Created {kind} {key.id} ({key.name}) for {_models_text(key)}{_limits_text(key)}.")
    print("Copy the secret now; it is stored only as a hash and cannot be shown again:")
    print(secret)
    return 0


def list_command(args: argparse.Namespace) -> int:
    keys = _with_store(args, lambda store: store.list())
    if not keys:
        print("No keys yet. Create one with: imagegate keys create --name NAME")
        return 0
    print(format_table(keys))
    return 0


def revoke_command(args: argparse.Namespace) -> int:
    if not _with_store(args, lambda store: store.revoke(args.key_id)):
        raise CliError(f"no active key with id {args.key_id!r} (see: imagegate keys list)")
    print(f"Revoked {args.key_id}.")
    return 0


def parse_models(value: str | None) -> list[str] | None:
    """``"a, b"`` -> ``["a", "b"]``; nothing (or only commas) means every model."""
    if value is None:
        return None
    models = [name.strip() for name in value.split(",") if name.strip()]
    return models or None


def parse_expiry(value: str, now: datetime | None = None) -> datetime:
    """``2027-01-01`` (midnight UTC), an ISO time (UTC unless it says), or ``30d`` / ``12h`` from now."""
    text = value.strip()
    duration = parse_duration(text)
    if duration is not None:
        return (now or datetime.now(UTC)) + duration
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise CliError(
            f"--expires: expected a date like 2027-01-01 or a duration like 30d, not {value!r}", 2
        ) from exc
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def parse_duration(text: str) -> timedelta | None:
    """``30d``, ``12h``, ``2w`` as a timedelta; None when ``text`` is not a duration."""
    unit = _DURATION_UNITS.get(text[-1:].lower())
    if unit is None or not text[:-1].isdigit():
        return None
    return int(text[:-1]) * unit


def format_table(keys: list[ApiKey]) -> str:
    header = ("ID", "NAME", "PREFIX", "MODELS", "GROUP", "QUOTA", "BALANCE", "CREATED", "REVOKED")
    rows = [
        (
            key.id,
            key.name,
            key.prefix + "…",
            ",".join(key.models) if key.models is not None else "*",
            key.group.name if key.group is not None else "-",
            _usd(key.quota_micros),
            _usd(None if key.quota_micros is None else key.balance_micros),
            _timestamp(key.created_at),
            _timestamp(key.revoked_at) if key.revoked_at else "-",
        )
        for key in keys
    ]
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in [header, *rows]
    ]
    return "\n".join(line.rstrip() for line in lines)


def _with_store(args: argparse.Namespace, action: Callable[[KeyStore], Awaitable[T]]) -> T:
    return run_with_engine(args, lambda engine: action(KeyStore(engine)))


def _models_text(key: ApiKey) -> str:
    """The models the key may really use: its own list narrowed by its group's."""
    models = key.effective_models()
    if models is None:
        return "all models"
    if not models:
        return "no models (its list and its group's have none in common)"
    return "models " + ", ".join(models)


def _limits_text(key: ApiKey) -> str:
    parts = [f"group {key.group.name}"] if key.group is not None else []
    parts.append("unlimited" if key.quota_micros is None else f"quota ${format_usd(key.quota_micros)}")
    if key.rpm is not None:
        parts.append(f"{key.rpm} requests/min")
    if key.expires_at is not None:
        parts.append(f"expires {_timestamp(key.expires_at)}")
    if key.response_format is not None:
        parts.append(f"response_format {key.response_format}")
    return ", " + ", ".join(parts)


def _usd(micros: int | None) -> str:
    return "unlimited" if micros is None else format_usd(micros)


def _timestamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%SZ")
