"""The price book: which price applies to a model, and what a request costs under it.

Precedence: a ``model_prices`` row (set through the admin API) beats the config file's
``[models.NAME] price``, which beats the shipped default (`DEFAULT_PRICES`). Every price write
bumps the ``prices`` config version (`imagegate.db.versions`); a process whose price book is
subscribed to it (`VersionWatcher.subscribe("prices", book.on_version)`) re-reads the rows when
the version moves, so a price set in one process applies in the others within about a second.
Without a watcher (tools, tests) rows are re-read every ``refresh_s`` seconds on use.

    prices = PriceBook({"gpt-image-2": {"per_token": {"image_out": 30}}}, engine)
    await prices.load()
    hold = prices.max_cost(request, multiplier=principal.price_multiplier)
    charge = prices.actual_cost(request, result, len(result.images), multiplier=...)
    await prices.set_price("demo", {"per_image": {"default": 0.02}})
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from imagegate.billing import costs
from imagegate.billing.price import DEFAULT_PRICES, Price, default_price, parse_price
from imagegate.db.tables import ModelPriceRow
from imagegate.db.versions import ConfigVersions
from imagegate.domain import ImageRequest, ImageResult

logger = logging.getLogger("imagegate.billing")

Source = Literal["db", "config", "default"]
#: The config version every price write bumps.
PRICES_VERSION = "prices"


@dataclass(frozen=True, slots=True)
class PriceInfo:
    model: str
    price: Price
    source: Source
    updated_at: datetime | None = None


class PriceBook:
    def __init__(
        self,
        config_prices: Mapping[str, dict[str, Any] | None],
        engine: AsyncEngine | None = None,
        refresh_s: float = 5.0,
        versions: ConfigVersions | None = None,
    ) -> None:
        # Config prices are validated at start-up: a typo should stop the gateway, not bill zero.
        self._config: dict[str, Price] = {}
        for model, data in config_prices.items():
            if data is not None:
                try:
                    self._config[model] = parse_price(data)
                except ValueError as exc:
                    raise ValueError(f"[models.{model}] price: {exc}") from exc
        self._engine = engine
        self._refresh_s = refresh_s
        self._db: dict[str, tuple[Price, datetime]] = {}
        self._next_refresh = 0.0
        self._refreshing = False
        self._versions = versions or (ConfigVersions(engine) if engine is not None else None)
        #: True once a version watcher drives reloads (`on_version`): no interval re-reads.
        self.watched = False

    # -- lookup -------------------------------------------------------------------------------

    def price(self, model: str) -> Price | None:
        """The price that applies to ``model`` now; None when it has none (it is free)."""
        stored = self._db.get(model)
        if stored is not None:
            return stored[0]
        return self._config.get(model) or default_price(model)

    def effective(self, models: list[str] | None = None) -> dict[str, PriceInfo]:
        """Every priced model (or those named) with its price and where the price comes from."""
        names = models if models is not None else sorted({*DEFAULT_PRICES, *self._config, *self._db})
        found: dict[str, PriceInfo] = {}
        for name in names:
            if name in self._db:
                price, updated_at = self._db[name]
                found[name] = PriceInfo(name, price, "db", updated_at)
            elif name in self._config:
                found[name] = PriceInfo(name, self._config[name], "config")
            elif (shipped := default_price(name)) is not None:
                found[name] = PriceInfo(name, shipped, "default")
        return found

    def max_cost(self, request: ImageRequest, multiplier: Decimal = Decimal(1)) -> int:
        """Micro-USD to hold before the upstream call (see `costs.max_cost`)."""
        return costs.max_cost(self.price(request.model), request, multiplier)

    def actual_cost(
        self,
        request: ImageRequest,
        result: ImageResult,
        delivered_images: int,
        multiplier: Decimal = Decimal(1),
    ) -> int:
        """Micro-USD the finished request costs (see `costs.actual_cost`)."""
        return costs.actual_cost(self.price(request.model), request, result, delivered_images, multiplier)

    # -- database overrides -------------------------------------------------------------------

    async def load(self) -> None:
        """Read the ``model_prices`` overrides (a bad row is logged and skipped)."""
        if self._engine is None:
            return
        query = select(ModelPriceRow.model, ModelPriceRow.price, ModelPriceRow.updated_at)
        async with self._engine.connect() as connection:
            rows = (await connection.execute(query)).all()
        loaded: dict[str, tuple[Price, datetime]] = {}
        for model, data, updated_at in rows:
            try:
                loaded[model] = (parse_price(data), updated_at)
            except ValueError as exc:
                logger.error("ignoring the stored price of %s: %s", model, exc)
        self._db = loaded
        self._next_refresh = time.monotonic() + self._refresh_s

    async def on_version(self, version: int) -> None:
        """The ``prices`` version moved (a write here or in another process): re-read the rows."""
        self.watched = True
        await self.load()

    async def refresh(self) -> None:
        """Re-read overrides when they are older than ``refresh_s``; cheap to call per request."""
        if self.watched or self._engine is None or self._refreshing or time.monotonic() < self._next_refresh:
            return
        self._refreshing = True
        try:
            await self.load()
        except Exception:
            # Keep billing with the prices already known; try again after the interval.
            logger.exception("could not reload model prices")
            self._next_refresh = time.monotonic() + self._refresh_s
        finally:
            self._refreshing = False

    async def set_price(self, model: str, data: Any) -> Price:
        """Store an override for ``model`` (ValueError when ``data`` is not a valid price)."""
        model = model.strip()
        if not model or len(model) > 200:
            raise ValueError("a model name needs 1 to 200 characters")
        price = parse_price(data)
        engine = self._require_engine()
        now = datetime.now(UTC)
        values = {"price": price.to_json(), "updated_at": now}
        async with engine.begin() as connection:
            changed = await connection.execute(
                update(ModelPriceRow).where(ModelPriceRow.model == model).values(**values)
            )
            if changed.rowcount == 0:
                await connection.execute(insert(ModelPriceRow).values(model=model, **values))
            await self._bump(connection)
        self._db[model] = (price, now)
        await self._announce()
        return price

    async def delete_price(self, model: str) -> bool:
        """Drop the override; the config or shipped price applies again. False when there was none."""
        engine = self._require_engine()
        async with engine.begin() as connection:
            result = await connection.execute(delete(ModelPriceRow).where(ModelPriceRow.model == model))
            if result.rowcount == 1:
                await self._bump(connection)
        self._db.pop(model, None)
        await self._announce()
        return result.rowcount == 1

    async def _bump(self, connection: AsyncConnection) -> None:
        if self._versions is not None:
            await self._versions.bump(connection, PRICES_VERSION)

    async def _announce(self) -> None:
        if self._versions is not None:
            await self._versions.announce(PRICES_VERSION)

    def _require_engine(self) -> AsyncEngine:
        if self._engine is None:
            raise RuntimeError("this price book has no database")
        return self._engine
