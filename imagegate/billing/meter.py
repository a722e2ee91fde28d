"""The billing of one request: hold its maximum, then settle what the upstream delivered, or release.

    meter = await Billing(prices, ledger).open(request, principal, request_id)   # 429 if short
    try:
        ... run the upstream until its ImageResult ...
        cost = await meter.settle(result)   # charged, whatever the client does; the caller logs cost
    finally:
        await meter.close()                 # no result (failure, cancellation): the hold goes back

Keys without a quota and the admin key are never held or charged; their cost is still computed
(and returned, for the request log). Ledger writes are shielded from cancellation: a client that
disconnects mid-write must not leave a hold half-applied, nor a hold taken that nobody releases
(the ledger's batcher gives back a hold whose waiter was cancelled). A result whose cost cannot
be computed, or is not a non-negative whole amount, is refused: the hold is released and the
request fails with 502 ``upstream_malformed``, so a bad number never keeps money held.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from imagegate.billing.ledger import Hold, Ledger
from imagegate.billing.prices import PriceBook
from imagegate.db.new_rows import NewRow
from imagegate.domain import ImageRequest, ImageResult, Principal, Usage
from imagegate.errors import UpstreamFailed

logger = logging.getLogger("imagegate.billing")

T = TypeVar("T")

_ENDPOINTS = {"generate": "/v1/images/generations", "edit": "/v1/images/edits"}


class Billing:
    """Prices and the ledger, as the image service uses them (the ledger is optional)."""

    def __init__(self, prices: PriceBook, ledger: Ledger | None = None) -> None:
        self.prices = prices
        self.ledger = ledger

    async def open(
        self,
        request: ImageRequest,
        principal: Principal,
        request_id: str,
        *,
        endpoint: str | None = None,
        with_hold: Callable[[int], tuple[NewRow, ...]] | None = None,
    ) -> Meter:
        """Hold the request's maximum cost (429 ``insufficient_quota`` when the key is short).

        ``request_id`` names the hold in the ledger and the request log; ``endpoint`` (default:
        the image endpoint of the request's operation) is logged if this process dies meanwhile.
        ``with_hold(amount)`` gives rows to insert in the hold's own transaction; they are written
        exactly when the meter's hold is ``recorded``, and it is the caller's to write them
        otherwise.
        """
        await self.prices.refresh()
        meter = Meter(self, request, principal)
        if principal.billed and not principal.is_admin and self.ledger is not None:
            amount = self.prices.max_cost(request, principal.price_multiplier)
            where = endpoint or _ENDPOINTS.get(request.operation)
            rows = with_hold(amount) if with_hold is not None else ()
            meter.hold = await self.ledger.hold(
                principal.key_id, request_id, amount, model=request.model, endpoint=where, rows=rows
            )
        return meter

    async def shielded(self, write: Awaitable[T], fallback: T) -> T:
        """Run a ledger settle or release, logging (not raising) a failed write.

        Cancellation cannot drop the write: the ledger queues it before it first waits, and its
        batcher applies what was queued whether or not anyone still awaits it.
        """
        try:
            return await write
        except asyncio.CancelledError:
            raise
        except Exception:
            # The client's request already has its answer; a failed write is the operator's
            # problem, not the client's. A hold left open is given back once this process ends.
            logger.exception("ledger write failed")
            return fallback

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
        """Charge for the images the upstream delivered; returns the cost in micro-USD.

        For a held request the cost is what was charged (0 if its hold had been given back
        already); otherwise what the result would cost, for the log. A cost that cannot be
        computed releases the hold and raises 502 ``upstream_malformed``.
        """
        self.done = True
        if result.usage is not None and not _is_valid_usage(result.usage):
            await self._release()
            raise _malformed(result)
        try:
            cost = self.billing.prices.actual_cost(
                self.request, result, len(result.images), self.principal.price_multiplier
            )
        except Exception as error:
            await self._release()
            raise _malformed(result) from error
        if not isinstance(cost, int) or cost < 0:
            await self._release()
            raise _malformed(result)
        ledger = self.billing.ledger
        if self.hold is None or ledger is None or not self.hold.recorded:
            return cost  # nothing held (unlimited key, admin, free model): the cost is for the log
        return await self.billing.shielded(self._charge(ledger, self.hold, cost), 0)

    async def close(self) -> None:
        """Release the hold unless the request was settled."""
        if self.done:
            return
        self.done = True
        await self._release()

    async def _charge(self, ledger: Ledger, hold: Hold, cost: int) -> int:
        try:
            return await ledger.settle(hold, cost)
        except asyncio.CancelledError:
            raise
        except Exception:
            # The charge could not be written (its transaction rolled back): try to give the
            # hold back rather than keep it. Should the charge have committed after all, the
            # release finds the hold closed and applies nothing.
            hold.closed = False
            await self.billing.shielded(ledger.release(hold), False)
            raise

    async def _release(self) -> None:
        if self.hold is not None and self.billing.ledger is not None:
            await self.billing.shielded(self.billing.ledger.release(self.hold), False)


def _is_valid_usage(usage: Usage) -> bool:
    """Token counts are whole, non-negative numbers; anything else is no basis for a charge."""
    counts = (usage.input_tokens, usage.output_tokens, usage.text_tokens, usage.image_tokens)
    return all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in counts)


def _malformed(result: ImageResult) -> UpstreamFailed:
    usage = result.usage
    detail = ""
    if usage is not None:
        detail = f" (input_tokens {usage.input_tokens!r}, output_tokens {usage.output_tokens!r})"
    return UpstreamFailed(
        f"The upstream's answer could not be priced{detail}; nothing was charged.",
        code="upstream_malformed",
    )
