"""What a request may cost at most (the hold) and what it did cost (the charge), in micro-USD.

    max_cost(price, request)                       # before the upstream call
    actual_cost(price, request, result, delivered) # after it, from usage or per image

Per-token prices bill the usage the upstream reports. The upper bound needs token counts the
upstream has not reported yet, so it uses OpenAI's published output tokens per image (by
quality, scaled by pixel area), a prompt of one token per character, and every input image at
high fidelity: generous on purpose, since a charge can never exceed its hold.
"""

from __future__ import annotations

import math
from decimal import Decimal

from imagegate.billing.price import Price, TokenPrices
from imagegate.domain import ImageRequest, ImageResult, Usage
from imagegate.money import MICROS_PER_USD, ceil_micros

# Output image tokens at 1024x1024 (OpenAI's published table for gpt-image-1; larger sizes
# scale with the area). gpt-image-2 spends more per image at the same quality.
OUTPUT_TOKENS = {"low": 272, "medium": 1056, "high": 4160}
OUTPUT_TOKENS_GPT_IMAGE_2 = {"low": 400, "medium": 1800, "high": 7200}
_SQUARE = 1024 * 1024
# "auto" picks among the standard sizes; the largest of them bounds it.
_AUTO_AREA_BOUND = 1536 * 1024
# OpenAI adds this many input tokens per image at high input fidelity (portrait/landscape).
_HIGH_FIDELITY_EXTRA = 6240
_QUALITY_ALIASES = {"standard": "medium", "hd": "high"}
_PER_MILLION = Decimal(1_000_000)


def max_cost(price: Price | None, request: ImageRequest, multiplier: Decimal = Decimal(1)) -> int:
    """The most ``request`` can cost: n × its dearest image, plus input for per-token prices."""
    if price is None:
        return 0
    if price.per_token is not None:
        tokens = price.per_token
        per_image = _token_image_usd(tokens, request.model, request.size, request.quality, bound=True)
        if price.per_image:
            per_image = max(per_image, _image_price(price.per_image, request.size, request.quality, True))
        total = per_image * request.n + _input_bound_usd(price.per_token, request)
    else:
        total = _image_price(price.per_image, request.size, request.quality, True) * request.n
    return _to_micros(total, multiplier)


def actual_cost(
    price: Price | None,
    request: ImageRequest,
    result: ImageResult,
    delivered_images: int,
    multiplier: Decimal = Decimal(1),
) -> int:
    """What the upstream's work cost: its reported usage, or per delivered image."""
    if price is None or delivered_images <= 0:
        return 0
    size = result.size or request.size
    quality = result.quality or request.quality
    if price.per_token is not None and result.usage is not None and result.usage.total_tokens > 0:
        total = _usage_usd(price.per_token, result.usage)
    elif price.per_image:
        total = _image_price(price.per_image, size, quality, False) * delivered_images
    else:
        assert price.per_token is not None
        per_image = _token_image_usd(price.per_token, request.model, size, quality, bound=False)
        total = per_image * delivered_images
    return _to_micros(total, multiplier)


def _to_micros(usd: Decimal, multiplier: Decimal) -> int:
    return ceil_micros(usd * multiplier * MICROS_PER_USD)


def _usage_usd(prices: TokenPrices, usage: Usage) -> Decimal:
    image_in = usage.image_tokens
    # Upstreams that give no breakdown bill all input as text.
    text_in = max(usage.text_tokens, usage.input_tokens - image_in)
    return (
        text_in * prices.text_in + image_in * prices.image_in + usage.output_tokens * prices.image_out
    ) / _PER_MILLION


def _token_image_usd(
    prices: TokenPrices, model: str, size: str | None, quality: str | None, *, bound: bool
) -> Decimal:
    table = OUTPUT_TOKENS_GPT_IMAGE_2 if model.startswith("gpt-image-2") else OUTPUT_TOKENS
    level = _quality(quality)
    if level is None:
        # Unknown quality: the dearest for a hold, the middle one for a charge.
        level = "high" if bound else "medium"
    area = _area(size)
    if area is None:
        area = _AUTO_AREA_BOUND if bound else _SQUARE
    tokens = math.ceil(table[level] * area / _SQUARE)
    return tokens * prices.image_out / _PER_MILLION


def _input_bound_usd(prices: TokenPrices, request: ImageRequest) -> Decimal:
    text = len(request.prompt)
    images = [*request.images, *([request.mask] if request.mask is not None else [])]
    image_tokens = sum(_input_image_tokens(item.width, item.height) + _HIGH_FIDELITY_EXTRA for item in images)
    return (text * prices.text_in + image_tokens * prices.image_in) / _PER_MILLION


def _input_image_tokens(width: int, height: int) -> int:
    """OpenAI's image-input cost: fit in 2048², short side to 768, 170 per 512px tile, plus 85."""
    fitted = min(1.0, 2048 / max(width, height, 1))
    scaled_w, scaled_h = width * fitted, height * fitted
    shrink = min(1.0, 768 / max(min(scaled_w, scaled_h), 1))
    tiles = math.ceil(scaled_w * shrink / 512) * math.ceil(scaled_h * shrink / 512)
    return 85 + 170 * tiles


def _image_price(table: dict[str, Decimal], size: str | None, quality: str | None, bound: bool) -> Decimal:
    """The table's price for one image; for a hold, the dearest entry an unknown part could hit."""
    size = size.lower() if size and size.lower() != "auto" else None
    quality = quality.lower() if quality and quality.lower() != "auto" else None
    if (size is not None and quality is not None) or not bound:
        keys = [f"{size}/{quality}" if size and quality else None, size, quality, "default"]
        for key in keys:
            if key is not None and key in table:
                return table[key]
        return Decimal(0)
    candidates = [value for key, value in table.items() if _may_match(key, size, quality)]
    return max(candidates, default=Decimal(0))


def _may_match(key: str, size: str | None, quality: str | None) -> bool:
    if key == "default":
        return True
    key_size, _, key_quality = key.partition("/")
    if not key_quality and "x" not in key_size:
        key_size, key_quality = "", key_size  # a bare quality
    size_ok = not key_size or size is None or key_size == size
    quality_ok = not key_quality or quality is None or key_quality == quality
    return size_ok and quality_ok


def _quality(quality: str | None) -> str | None:
    if not quality:
        return None
    level = _QUALITY_ALIASES.get(quality.lower(), quality.lower())
    return level if level in OUTPUT_TOKENS else None


def _area(size: str | None) -> int | None:
    if not size or size.lower() == "auto":
        return None
    width, _, height = size.lower().partition("x")
    try:
        return int(width) * int(height)
    except ValueError:
        return None
