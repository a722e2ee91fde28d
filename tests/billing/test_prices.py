"""Prices: parsing, shipped defaults, what a request may cost and what it did cost."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from imagegate.billing.price import parse_price
from imagegate.billing.prices import PriceBook
from imagegate.domain import GeneratedImage, ImageRequest, ImageResult, InputImage, Usage
from imagegate.money import format_usd, to_micros


def request(model: str = "gpt-image-1", **fields: Any) -> ImageRequest:
    return ImageRequest(operation="generate", model=model, prompt=fields.pop("prompt", "a red fox"), **fields)


def result(images: int = 1, usage: Usage | None = None, **fields: Any) -> ImageResult:
    return ImageResult(images=[GeneratedImage() for _ in range(images)], usage=usage, **fields)


def test_money_helpers() -> None:
    assert to_micros("0.167") == 167_000 and to_micros(0.1) == 100_000 and to_micros("0.0000001") == 1
    assert format_usd(0) == "0.000000" and format_usd(12_340_000) == "12.340000"
    with pytest.raises(ValueError):
        to_micros("Infinity")


@pytest.mark.parametrize(
    ("quality", "usd"), [("low", "0.010880"), ("medium", "0.042240"), ("high", "0.166400")]
)
def test_gpt_image_1_per_image_without_usage_matches_the_published_prices(quality: str, usd: str) -> None:
    book = PriceBook({})
    cost = book.actual_cost(request(size="1024x1024", quality=quality), result(), 1)
    assert format_usd(cost) == usd


def test_usage_is_billed_by_token_kind_and_multiplied() -> None:
    book = PriceBook({})
    usage = Usage(input_tokens=1_100, output_tokens=4_160, text_tokens=100, image_tokens=1_000)
    # 100 × $5 + 1,000 × $10 + 4,160 × $40, per 1M tokens
    assert book.actual_cost(request(), result(usage=usage), 1) == 500 + 10_000 + 166_400
    assert book.actual_cost(request(), result(usage=usage), 1, Decimal("0.5")) == 88_450


def test_the_hold_covers_the_dearest_outcome() -> None:
    book = PriceBook({})
    unknown = book.max_cost(request(n=2))  # auto size, auto quality: 1536x1024 high, twice
    assert unknown >= 2 * 249_600
    high = book.max_cost(request(size="1024x1024", quality="high"))
    assert book.actual_cost(request(), result(usage=Usage(output_tokens=4_160)), 1) <= high
    edit = request(size="1024x1024", quality="low", images=[InputImage(b"", "png", 1024, 1024)])
    assert book.max_cost(edit) > book.max_cost(request(size="1024x1024", quality="low"))
    assert book.max_cost(request(model="gpt-image-2", size="3840x2160", quality="high")) > high


def test_per_image_tables() -> None:
    book = PriceBook(
        {"flux": {"per_image": {"1024x1024/high": 0.2, "1024x1024": 0.1, "low": 0.01, "default": 0.05}}}
    )
    assert book.max_cost(request("flux", size="1024x1024", quality="high")) == 200_000
    assert book.max_cost(request("flux", size="1024x1024", quality="medium")) == 100_000
    assert book.max_cost(request("flux", size="512x512", quality="low")) == 10_000
    assert book.max_cost(request("flux", n=3)) == 600_000  # auto: any entry could apply
    assert book.actual_cost(request("flux"), result(2, size="2048x2048", quality="medium"), 2) == 100_000
    assert book.actual_cost(request("flux"), result(0), 0) == 0


def test_defaults_config_and_unpriced_models() -> None:
    book = PriceBook({"demo": {"per_image": {"default": "0.5"}}, "gpt-image-1": None})
    assert book.max_cost(request("demo", n=2)) == 1_000_000
    assert book.price("gpt-image-1-2025-04-15") == book.price("gpt-image-1")
    assert book.price("gpt-image-1-mini") != book.price("gpt-image-1")
    assert book.price("my-local-model") is None and book.max_cost(request("my-local-model")) == 0
    assert book.effective(["demo"])["demo"].source == "config"
    assert book.effective()["gpt-image-2"].source == "default"


@pytest.mark.parametrize(
    "data",
    [
        None,
        {},
        {"per_token": {"text_out": 1}},
        {"per_token": {"text_in": -1}},
        {"per_image": {"huge": 1}},
        {"per_image": {"1024x1024/ultra": 1}},
        {"per_image": {"default": "cheap"}},
        {"per_minute": 1},
        {"per_image": {"\uff11\uff10\uff12\uff14x\uff11\uff10\uff12\uff14": 1}},  # full-width digits
        {"per_image": {"1024x1024\n/high": 1}},
        {"per_image": {"default": "1e30"}},
        {"per_token": {"image_out": "0.0000000000001"}},
    ],
)
def test_bad_prices_are_refused(data: Any) -> None:
    with pytest.raises(ValueError):
        parse_price(data)
    if data is not None:
        with pytest.raises(ValueError, match=r"\[models\.x\] price"):
            PriceBook({"x": data} if data else {"x": {"per_x": 1}})


def test_prices_round_trip_as_decimal_strings() -> None:
    price = parse_price({"per_token": {"image_out": 40}, "per_image": {"HIGH": 0.2}})
    assert price.to_json() == {
        "per_token": {"text_in": "0", "image_in": "0", "image_out": "40"},
        "per_image": {"high": "0.2"},
    }
    assert parse_price(price.to_json()) == price


async def test_database_overrides_beat_config_and_reach_other_books(engine: AsyncEngine) -> None:
    mine = PriceBook({"demo": {"per_image": {"default": 0.5}}}, engine, refresh_s=0)
    theirs = PriceBook({}, engine, refresh_s=0)
    await mine.set_price("demo", {"per_image": {"default": 0.02}})
    assert mine.max_cost(request("demo")) == 20_000
    assert theirs.max_cost(request("demo")) == 0  # not reloaded yet: demo is free by default
    await theirs.refresh()
    assert theirs.max_cost(request("demo")) == 20_000
    assert theirs.effective(["demo"])["demo"].source == "db"
    with pytest.raises(ValueError):
        await mine.set_price("demo", {"per_image": {}})
    assert await mine.delete_price("demo") and not await mine.delete_price("demo")
    assert mine.max_cost(request("demo")) == 500_000
