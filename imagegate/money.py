"""Integer micro-USD in code and the database; decimal strings with six places at the edges.

    to_micros("0.04")          # 40_000
    format_usd(40_000)         # "0.040000"
    from_micros(40_000)        # Decimal("0.04")

Floats never carry money: a config's ``0.167`` is read through its decimal text, and costs are
rounded up to the micro-dollar once, at the end of a computation.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal, InvalidOperation

MICROS_PER_USD = 1_000_000
_MICRO = Decimal(MICROS_PER_USD)


def to_decimal(value: Decimal | str | float | int) -> Decimal:
    """A finite decimal from a config or API value; ValueError for anything else."""
    if isinstance(value, bool):
        raise ValueError("a money amount must be a number, not a boolean")
    try:
        number = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    except (InvalidOperation, TypeError) as exc:
        raise ValueError(f"not a decimal number: {value!r}") from exc
    if not number.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    return number


def to_micros(usd: Decimal | str | float | int) -> int:
    """USD as integer micro-USD, rounded up (a price is never cut below what it says)."""
    return ceil_micros(to_decimal(usd) * _MICRO)


def ceil_micros(micros: Decimal) -> int:
    """A fractional micro-USD amount rounded up to a whole one."""
    return int(micros.to_integral_value(rounding=ROUND_CEILING))


def from_micros(micros: int) -> Decimal:
    return (Decimal(micros) / _MICRO).quantize(Decimal("0.000001"))


def format_usd(micros: int) -> str:
    """``"12.340000"``: how amounts appear in the API, the CLI and the request log."""
    return str(from_micros(micros))
