"""A model's price, as written in config and the admin API, and the shipped defaults.

Two shapes, which may be combined:

    price = { per_token = { text_in = 5.0, image_in = 10.0, image_out = 40.0 } }   # USD per 1M tokens
    price = { per_image = { "1024x1024/high" = 0.167, "1536x1024" = 0.06, high = 0.2, default = 0.04 } }

``per_token`` bills the usage the upstream reports; ``per_image`` bills each delivered image by
size and quality (most specific key first: ``SIZE/QUALITY``, ``SIZE``, ``QUALITY``, ``default``).
A per-token model with a ``per_image`` table uses the table when an upstream reports no usage.

    parse_price({"per_image": {"default": 0.04}}).to_json()   # {"per_image": {"default": "0.04"}}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from imagegate.media.sizes import match_size
from imagegate.money import to_decimal

TOKEN_FIELDS = ("text_in", "image_in", "image_out")
# Bounds on one amount (per image, or per 1M tokens): a typo like "1e30" must not reach the
# ledger's 64-bit columns, and a price finer than 1e-12 USD bills nothing.
MAX_PRICE_USD = Decimal(10_000)
PRICE_PLACES = 12
QUALITIES = ("low", "medium", "high", "standard", "hd", "auto")


@dataclass(frozen=True, slots=True)
class TokenPrices:
    """USD per 1M tokens of each kind."""

    text_in: Decimal = Decimal(0)
    image_in: Decimal = Decimal(0)
    image_out: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class Price:
    per_token: TokenPrices | None = None
    #: USD per image by "SIZE/QUALITY", "SIZE", "QUALITY" or "default".
    per_image: dict[str, Decimal] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The config/admin-API shape, with amounts as decimal strings."""
        body: dict[str, Any] = {}
        if self.per_token is not None:
            body["per_token"] = {name: _text(getattr(self.per_token, name)) for name in TOKEN_FIELDS}
        if self.per_image:
            body["per_image"] = {key: _text(value) for key, value in self.per_image.items()}
        return body


def _text(amount: Decimal) -> str:
    """Plain decimal text: "0.000001", never "1E-6" ("f" is safe: amounts are bounded on input)."""
    return format(amount, "f")


def parse_price(data: Any) -> Price:
    """Validate a price from config or the admin API; ValueError says what is wrong."""
    if not isinstance(data, dict) or not data:
        raise ValueError("a price is an object with 'per_token' and/or 'per_image'")
    unknown = set(data) - {"per_token", "per_image"}
    if unknown:
        raise ValueError(f"unknown price fields: {', '.join(sorted(unknown))}")
    per_token = None
    if "per_token" in data:
        tokens = data["per_token"]
        if not isinstance(tokens, dict) or not tokens or set(tokens) - set(TOKEN_FIELDS):
            raise ValueError(f"per_token takes USD per 1M tokens for {', '.join(TOKEN_FIELDS)}")
        amounts = {name: _amount(value, f"per_token.{name}") for name, value in tokens.items()}
        per_token = TokenPrices(**amounts)
    per_image: dict[str, Decimal] = {}
    if "per_image" in data:
        table = data["per_image"]
        if not isinstance(table, dict) or not table:
            raise ValueError("per_image maps 'SIZE/QUALITY', 'SIZE', 'QUALITY' or 'default' to USD")
        for key, value in table.items():
            per_image[_image_key(key)] = _amount(value, f"per_image.{key}")
    if per_token is None and not per_image:
        raise ValueError("a price needs per_token or per_image")
    return Price(per_token=per_token, per_image=per_image)


def _amount(value: Any, name: str) -> Decimal:
    try:
        number = to_decimal(value)
    except ValueError as exc:
        raise ValueError(f"price {name} must be a number of USD") from exc
    if number < 0:
        raise ValueError(f"price {name} cannot be negative")
    if number > MAX_PRICE_USD:
        raise ValueError(f"price {name} may be at most {MAX_PRICE_USD} USD")
    if number != number.quantize(Decimal(1).scaleb(-PRICE_PLACES)):
        raise ValueError(f"price {name} takes at most {PRICE_PLACES} decimal places")
    return number


def _image_key(key: Any) -> str:
    text = str(key).strip().lower()
    size, _, quality = text.partition("/")
    valid = (
        text == "default"
        or (not quality and (match_size(size) is not None or size in QUALITIES))
        or (match_size(size) is not None and quality in QUALITIES)
    )
    if not valid:
        raise ValueError(f"per_image key {key!r} is not 'SIZE/QUALITY', 'SIZE', 'QUALITY' or 'default'")
    return text


def _tokens(text_in: str, image_in: str, image_out: str) -> Price:
    return Price(per_token=TokenPrices(Decimal(text_in), Decimal(image_in), Decimal(image_out)))


# OpenAI's published prices (USD per 1M tokens; output is image tokens). At 1024x1024 gpt-image-1
# works out to $0.011 / $0.042 / $0.167 per low / medium / high image. Operators override these
# in config ([models.NAME] price) or through the admin API.
DEFAULT_PRICES: dict[str, Price] = {
    "gpt-image-1": _tokens("5", "10", "40"),
    "gpt-image-1-mini": _tokens("2", "2.5", "8"),
    "gpt-image-1.5": _tokens("5", "8", "32"),
    "chatgpt-image-latest": _tokens("5", "8", "32"),
    "gpt-image-2": _tokens("5", "8", "30"),
    "dall-e-3": Price(
        per_image={
            "1024x1024/standard": Decimal("0.04"),
            "1024x1024/hd": Decimal("0.08"),
            "1792x1024/standard": Decimal("0.08"),
            "1024x1792/standard": Decimal("0.08"),
            "1792x1024/hd": Decimal("0.12"),
            "1024x1792/hd": Decimal("0.12"),
            "default": Decimal("0.04"),
        }
    ),
    "dall-e-2": Price(
        per_image={
            "256x256": Decimal("0.016"),
            "512x512": Decimal("0.018"),
            "1024x1024": Decimal("0.02"),
            "default": Decimal("0.02"),
        }
    ),
    # The built-in demo models are free: a new user's first images cost nothing. To try quotas
    # with them, give demo a price ([models.demo] price, or PUT /admin/prices/demo).
}


def default_price(model: str) -> Price | None:
    """The shipped price of ``model``, or of the family it is a dated snapshot of."""
    if model in DEFAULT_PRICES:
        return DEFAULT_PRICES[model]
    family = [name for name in DEFAULT_PRICES if model.startswith(name + "-")]
    return DEFAULT_PRICES[max(family, key=len)] if family else None
