"""The billing of one request: hold its maximum, then settle what the upstream delivered, or release.

    meter = await Billing(prices, ledger).open(request, principal, request_id)   # 429 if short
    try:
        ... run the upstream until its ImageResult ...
        await meter.settle(result)          # the upstream finished: charged, whatever the client does
    finally:
        await meter.close()                 # no result (failure, cancellation): the hold goes back

Keys without a quota and the admin key are never held or charged; their cost is still computed
and noted for the request log. Ledger writes are shielded from cancellation: a client that
disconnects mid-write must not leave a hold half-applied, nor a hold taken that nobody releases
(the ledger's batcher gives back a hold whose waiter was cancelled).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

from imagegate.billing.ledger import Hold, Ledger
from imagegate.billing.prices import PriceBook
from imagegate.domain import ImageRequest, ImageResult, Principal

logger = logging.getLogger("imagegate.billing")


class Billing:
    """Prices and the ledger, as the image service uses them (the ledger is optional)."""

    def __init__(self, prices: PriceBook, ledger: Ledger | None = None) -> None:
        self.prices = prices
        self.ledger = ledger

    async def open(self, request: ImageRequest, principal: Principal, request_id: str) -> Meter:
        """Hold the request's maximum cost under ``request_id`` (429 insufficient_quota if short)."""
        await self.prices.refresh()
        meter = Meter(self, request, principal)
        if principal.billed and not principal.is_admin and self.ledger is not None:
            amount = self.prices.max_cost(request, principal.price_multiplier)
            meter.hold = await self.ledger.hold(principal.key_id, request_id, amount)
        return meter

    async def shielded(self, write: Awaitable[Any]) -> None:
        """Run a ledger settle or release, logging (not raising) a failed write.

        Cancellation cannot drop the write: the ledger queues it before it first waits, and its
        batcher applies what was queued whether or not anyone still awaits it.
        """
        try:
            await write
        except asyncio.CancelledError:
            raise
        except Exception:
            # The client's request already has its answer; a failed write is the operator's
            # problem (the hold stays taken until `Ledger.release_stale`), not the client's.
            logger.exception("ledger write failed")

    async def drain(self) -> None:
        """Wait for ledger writes still queued (at shutdown, before the engine closes)."""
        if self.ledger is not None:
            await self.ledger.drain()


class Meter:
    def __init__(self, billing: Billing, request: ImageRequest, principal: Principal) -> None:
        self.billing = billing
        self.request = request
        self.principal = principal
        self.hold: Hold | None = None
        self.done = False

    async def settle(self, result: ImageResult) -> int:
        """Charge for the images the upstream delivered; returns the cost in micro-USD."""
        self.done = True
        cost = self.billing.prices.actual_cost(
            self.request, result, len(result.images), self.principal.price_multiplier
        )
        if self.hold is not None and self.billing.ledger is not None:
            await self.billing.shielded(self.billing.ledger.settle(self.hold, cost))
        return cost

    async def close(self) -> None:
        """Release the hold unless the request was settled."""
        if self.done:
            return
        self.done = True
        if self.hold is not None and self.billing.ledger is not None:
            await self.billing.shielded(self.billing.ledger.release(self.hold))
