"""``imagegate usage``: what each key spent on each model, from the request log.

imagegate usage                       # everything logged
imagegate usage --since 7d --key key_0123abcd
imagegate usage --since 2026-01-01 --until 2026-02-01
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from imagegate.cli.common import add_config_option, run_with_engine
from imagegate.cli.groups import render_table
from imagegate.cli.keys import parse_duration, parse_expiry
from imagegate.db.log_queries import LogFilter, UsageRow, usage
from imagegate.money import format_usd


def add_parser(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser("usage", help="print requests, images, tokens and cost per key and model")
    parser.add_argument("--since", metavar="WHEN", help="from this date or time (UTC), or e.g. 7d ago")
    parser.add_argument("--until", metavar="WHEN", help="up to (excluding) this date or time (UTC)")
    parser.add_argument("--key", metavar="KEY_ID", help="only this key")
    parser.add_argument("--model", help="only this model")
    add_config_option(parser)
    parser.set_defaults(handler=usage_command)


def usage_command(args: argparse.Namespace) -> int:
    where = LogFilter(
        key_id=args.key,
        model=args.model,
        since=_moment(args.since),
        until=_moment(args.until),
    )

    async def query(engine: AsyncEngine) -> list[UsageRow]:
        return await usage(engine, where)

    rows = summarize(run_with_engine(args, query))
    if not rows:
        print("No requests logged in that range.")
        return 0
    print(format_table(rows))
    return 0


def summarize(days: list[UsageRow]) -> list[UsageRow]:
    """Per-day rows folded into one row per key × model (day is the range's first day)."""
    totals: dict[tuple[str | None, str | None], UsageRow] = {}
    for row in days:
        key = (row.key_id, row.model)
        seen = totals.get(key)
        totals[key] = row if seen is None else _add(seen, row)
    return sorted(totals.values(), key=lambda row: (row.key_id or "", row.model or ""))


def format_table(rows: list[UsageRow]) -> str:
    header = ("KEY", "MODEL", "REQUESTS", "ERRORS", "IMAGES", "INPUT_TOKENS", "OUTPUT_TOKENS", "COST_USD")
    total = rows[0]
    for row in rows[1:]:
        total = _add(total, row)
    lines = [_cells(row.key_id or "-", row.model or "-", row) for row in rows]
    lines.append(_cells("TOTAL", "", total))
    return render_table(header, lines)


def _cells(key: str, model: str, row: UsageRow) -> tuple[str, ...]:
    numbers = (row.requests, row.errors, row.images, row.input_tokens, row.output_tokens)
    return (key, model, *(str(number) for number in numbers), format_usd(row.cost_micros))


def _add(a: UsageRow, b: UsageRow) -> UsageRow:
    return replace(
        a,
        requests=a.requests + b.requests,
        errors=a.errors + b.errors,
        images=a.images + b.images,
        input_tokens=a.input_tokens + b.input_tokens,
        output_tokens=a.output_tokens + b.output_tokens,
        cost_micros=a.cost_micros + b.cost_micros,
    )


def _moment(value: str | None) -> datetime | None:
    """A date or UTC time, or a duration (``7d``) back from now."""
    if value is None:
        return None
    duration = parse_duration(value.strip())
    return datetime.now(UTC) - duration if duration is not None else parse_expiry(value)
