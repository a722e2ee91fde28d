"""Per-channel health: a circuit breaker, a concurrency limit and a disabled flag.

One :class:`ChannelHealth` lives per gateway process (built in ``Gateway.start``, or by the CLI);
the router asks it for a :class:`Lease` before each attempt and reports the outcome on it.

Breaker: ``failures`` consecutive failures open it (the channel rests for ``cooldown_s``); then
it is half-open and exactly one real request goes through as the probe; success closes it,
failure opens it again. A channel whose upstream refused the gateway's credentials or quota is
*disabled* until restart or until an admin test succeeds, since waiting would not fix it.

Usage::

    health = ChannelHealth(failures=5, cooldown_s=30)
    lease = health.try_acquire("openai-main", max_concurrency=4)
    if lease is not None:
        try:
            ...  # call the upstream
            lease.succeed()
        except UpstreamFailed as error:
            lease.fail(error.code or "upstream_error", error.message)
        finally:
            lease.release()
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from imagegate.settings import Settings

logger = logging.getLogger("imagegate.routing")

_MAX_ERROR_CHARS = 500


class Breaker(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class Availability(StrEnum):
    """Whether a new attempt may start on a channel now, and if not, why."""

    READY = "ready"
    FULL = "full"  # healthy, every slot taken: worth waiting for
    PROBING = "probing"  # half-open and its one probe is in flight
    RESTING = "resting"  # breaker open
    DISABLED = "disabled"


@dataclass(slots=True)
class ChannelState:
    in_flight: int = 0
    consecutive_failures: int = 0
    opened_at: float | None = None  # monotonic time the breaker opened
    probe_in_flight: bool = False
    disabled_reason: str | None = None
    last_error: str | None = None
    last_error_at: float | None = None  # wall-clock times, for people
    last_success_at: float | None = None


class ChannelHealth:
    def __init__(
        self,
        *,
        failures: int = 5,
        cooldown_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.failures = failures
        self.cooldown_s = cooldown_s
        self.clock = clock
        self.wall_clock = wall_clock
        self._states: dict[str, ChannelState] = {}
        self._changed: asyncio.Event | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> ChannelHealth:
        return cls(failures=settings.breaker_failures, cooldown_s=settings.breaker_cooldown_s)

    def state(self, name: str) -> ChannelState:
        state = self._states.get(name)
        if state is None:
            state = self._states[name] = ChannelState()
        return state

    # -- reading ------------------------------------------------------------------------------

    def breaker(self, name: str) -> Breaker:
        opened_at = self.state(name).opened_at
        if opened_at is None:
            return Breaker.CLOSED
        return Breaker.OPEN if self.clock() - opened_at < self.cooldown_s else Breaker.HALF_OPEN

    def availability(self, name: str, max_concurrency: int | None) -> Availability:
        state = self.state(name)
        if state.disabled_reason is not None:
            return Availability.DISABLED
        breaker = self.breaker(name)
        if breaker is Breaker.OPEN:
            return Availability.RESTING
        if breaker is Breaker.HALF_OPEN and state.probe_in_flight:
            return Availability.PROBING
        if max_concurrency is not None and state.in_flight >= max_concurrency:
            return Availability.FULL
        return Availability.READY

    def describe(self, name: str, max_concurrency: int | None) -> str:
        """Why a channel takes no request now, in words (for a 503's message)."""
        state = self.state(name)
        match self.availability(name, max_concurrency):
            case Availability.DISABLED:
                return f"{name} (disabled: {state.disabled_reason})"
            case Availability.RESTING:
                assert state.opened_at is not None
                left = self.cooldown_s - (self.clock() - state.opened_at)
                return f"{name} (resting after repeated failures, probed again in {max(left, 0):.0f}s)"
            case Availability.PROBING:
                return f"{name} (being probed after resting)"
            case Availability.FULL:
                return f"{name} (all {max_concurrency} slots busy)"
        return f"{name} (ready)"

    def snapshot(self, name: str) -> dict[str, Any]:
        state = self.state(name)
        return {
            "in_flight": state.in_flight,
            "breaker": self.breaker(name).value,
            "consecutive_failures": state.consecutive_failures,
            "disabled": state.disabled_reason is not None,
            "disabled_reason": state.disabled_reason,
            "last_error": state.last_error,
            "last_error_at": _seconds(state.last_error_at),
            "last_success_at": _seconds(state.last_success_at),
        }

    # -- attempts -----------------------------------------------------------------------------

    def try_acquire(self, name: str, max_concurrency: int | None) -> Lease | None:
        """A slot for one attempt, or None when the channel takes no request right now."""
        if self.availability(name, max_concurrency) is not Availability.READY:
            return None
        state = self.state(name)
        probe = self.breaker(name) is Breaker.HALF_OPEN
        if probe:
            state.probe_in_flight = True
        state.in_flight += 1
        return Lease(self, name, probe)

    async def wait_for_change(self, timeout_s: float) -> None:
        """Return when a slot frees or a channel's state changes; TimeoutError after ``timeout_s``."""
        if self._changed is None:
            self._changed = asyncio.Event()
        async with asyncio.timeout(timeout_s):
            await self._changed.wait()

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None  # waiters re-check and wait on a fresh event

    # -- outcomes -----------------------------------------------------------------------------

    def record_success(self, name: str) -> None:
        self.mark_alive(name)
        self.state(name).last_success_at = self.wall_clock()

    def mark_alive(self, name: str) -> None:
        """The upstream answered (even a client error proves it works): close the breaker."""
        state = self.state(name)
        if state.opened_at is not None:
            logger.info("channel %s answered its probe and is back in rotation", name)
        state.consecutive_failures = 0
        state.opened_at = None
        self._notify()

    def note_error(self, name: str, text: str) -> None:
        """Remember a channel's latest error for the admin view, without judging the channel."""
        state = self.state(name)
        state.last_error = text[:_MAX_ERROR_CHARS]
        state.last_error_at = self.wall_clock()

    def record_failure(self, name: str, code: str, message: str, *, probe: bool = False) -> None:
        state = self.state(name)
        state.consecutive_failures += 1
        self.note_error(name, f"{code}: {message}")
        if probe:
            state.opened_at = self.clock()
            logger.warning("channel %s failed its probe (%s); resting it again", name, code)
        elif state.opened_at is None and state.consecutive_failures >= self.failures:
            state.opened_at = self.clock()
            logger.warning(
                "channel %s failed %d times in a row (last: %s); resting it for %gs",
                name,
                state.consecutive_failures,
                code,
                self.cooldown_s,
            )
        self._notify()

    def disable(self, name: str, reason: str) -> None:
        state = self.state(name)
        state.disabled_reason = reason
        self.note_error(name, reason)
        logger.warning(
            "channel %s disabled: %s. It stays out of rotation until a restart or a successful "
            "POST /admin/channels/%s/test.",
            name,
            reason,
            name,
        )
        self._notify()

    def reset(self, name: str) -> None:
        """Forget a channel's verdicts (its config changed); requests in flight keep their slots."""
        state = self.state(name)
        state.disabled_reason = None
        state.consecutive_failures = 0
        state.opened_at = None
        self._notify()

    def enable(self, name: str) -> None:
        state = self.state(name)
        if state.disabled_reason is not None:
            logger.warning("channel %s re-enabled after a successful test", name)
        state.disabled_reason = None
        self.record_success(name)


class Lease:
    """One attempt's slot on a channel; ``release()`` must run whatever happened (it is idempotent)."""

    __slots__ = ("_released", "health", "name", "probe")

    def __init__(self, health: ChannelHealth, name: str, probe: bool) -> None:
        self.health = health
        self.name = name
        self.probe = probe
        self._released = False

    def succeed(self) -> None:
        self.health.record_success(self.name)

    def alive(self) -> None:
        self.health.mark_alive(self.name)

    def fail(self, code: str, message: str) -> None:
        self.health.record_failure(self.name, code, message, probe=self.probe)

    def disable(self, reason: str) -> None:
        self.health.disable(self.name, reason)

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        state = self.health.state(self.name)
        state.in_flight -= 1
        if self.probe:
            # An attempt that ended without a verdict (cancelled) lets the next request probe.
            state.probe_in_flight = False
        self.health._notify()


def _seconds(moment: float | None) -> float | None:
    return round(moment, 3) if moment is not None else None
