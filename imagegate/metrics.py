"""Prometheus metrics (SPEC §12): the metric objects and the small functions that record them.

Label values come only from config (model and channel names) or from fixed sets in this
module, never from what a client sent: a name that is not configured is recorded as "unknown",
so a client cannot grow the series count.

Every HTTP request is recorded by `imagegate.api.metrics_middleware`: the request-level metrics,
and from the request's `RequestRecord` (filled in by the pipeline) its model label, its upstream
attempts, the images it delivered and what they cost. Requests that run outside HTTP (async tasks)
are recorded by whoever runs them, with the same function:

    from imagegate import metrics
    metrics.observe_record(record)                      # attempts, images, cost of a finished request
    metrics.set_tasks({"queued": 3, "processing": 1})   # async tasks by status
    metrics.set_channel_up(channel.name, up)            # /metrics also sets it from the breakers
    metrics.record_upstream_attempt(channel.name, error)  # error: GatewayError | None, one attempt

Under `imagegate serve --workers N` the serve command points PROMETHEUS_MULTIPROC_DIR at a fresh
per-run folder before any worker starts; each worker writes its values there and `/metrics`
(`exposition()`) sums them. The variable must be set before prometheus_client is imported.
"""

from __future__ import annotations

import atexit
import functools
import os
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as _multiprocess

from imagegate.errors import (
    AuthenticationFailed,
    GatewayError,
    InvalidRequest,
    NoHealthyChannel,
    RateLimited,
    UpstreamFailed,
    UpstreamTimeout,
)
from imagegate.observability import RequestRecord

UNKNOWN = "unknown"
NONE = "none"  # a request that names no model (files, health, admin…)
TASK_STATUSES = ("queued", "processing", "completed", "failed", "cancelled")
OUTCOMES = ("success", "timeout", "rate_limited", "upstream_error", "rejected", "unavailable", "other")

# Images take from a second to minutes; the buckets reach past the 100 s proxies cut at.
_DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300)

requests_total = Counter(
    "imagegate_requests_total", "HTTP requests answered", ["endpoint", "model", "status"]
)
request_duration = Histogram(
    "imagegate_request_duration_seconds",
    "Time from request to the end of the response",
    ["endpoint"],
    buckets=_DURATION_BUCKETS,
)
time_to_first_byte = Histogram(
    "imagegate_time_to_first_byte_seconds",
    "Time from request to the first byte of the response body",
    ["endpoint"],
    buckets=_DURATION_BUCKETS,
)
in_flight_requests = Gauge(
    "imagegate_in_flight_requests", "Requests being answered now", multiprocess_mode="livesum"
)
upstream_attempts = Counter(
    "imagegate_upstream_attempts_total", "Calls to upstream channels", ["channel", "outcome"]
)
# Each worker keeps its own breaker, so a channel counts as up only where every live worker says so.
channel_up = Gauge(
    "imagegate_channel_up", "1 while a channel takes requests", ["channel"], multiprocess_mode="livemin"
)
images_total = Counter("imagegate_images_total", "Images delivered", ["model"])
cost_usd = Counter("imagegate_cost_usd_total", "Money charged, USD", ["model"])
tasks = Gauge("imagegate_tasks", "Async tasks by status", ["status"], multiprocess_mode="livemax")


# Children by label values, cached: `labels()` validates and locks on every call, and the
# middleware records on every request. Every label value is from a bounded set, so are these.
@functools.cache
def request_counter(endpoint: str, model: str, status: str) -> Any:
    return requests_total.labels(endpoint, model, status)


@functools.cache
def attempt_counter(channel: str, outcome: str) -> Any:
    return upstream_attempts.labels(channel, outcome)


@functools.cache
def images_counter(model: str) -> Any:
    return images_total.labels(model)


@functools.cache
def endpoint_timers(endpoint: str) -> tuple[Any, Any]:
    """(time to first byte, duration) histograms of an endpoint."""
    return time_to_first_byte.labels(endpoint), request_duration.labels(endpoint)


_known_models: frozenset[str] = frozenset()
_known_channels: frozenset[str] = frozenset()


def set_known_names(models: Iterable[str], channels: Iterable[str]) -> None:
    """The configured model and channel names: the only label values recorded as they are."""
    global _known_models, _known_channels
    _known_models = frozenset(models)
    _known_channels = frozenset(channels)


def model_label(name: str | None) -> str:
    if name is None:
        return NONE
    return name if name in _known_models else UNKNOWN


def channel_label(name: str) -> str:
    return name if name in _known_channels else UNKNOWN


def outcome(error: GatewayError | None) -> str:
    """A fixed outcome name for an upstream attempt."""
    if error is None:
        return "success"
    if isinstance(error, UpstreamTimeout):
        return "timeout"
    if isinstance(error, RateLimited):
        return "rate_limited"
    if isinstance(error, NoHealthyChannel):
        return "unavailable"
    if isinstance(error, UpstreamFailed):
        return "upstream_error"
    if isinstance(error, InvalidRequest | AuthenticationFailed):
        return "rejected"
    return "other"


# Error codes of a failed attempt (as the request record keeps them) -> outcome label.
_OUTCOME_OF_CODE = {
    "upstream_timeout": "timeout",
    "rate_limit_exceeded": "rate_limited",
    "insufficient_quota": "rate_limited",
    "upstream_error": "upstream_error",
    "upstream_auth_failed": "upstream_error",
    "upstream_model_not_found": "upstream_error",
    "no_healthy_channel": "unavailable",
}


def outcome_of_code(code: str | None) -> str:
    if code is None:
        return "success"
    return _OUTCOME_OF_CODE.get(code, "other")


def observe_record(record: RequestRecord) -> None:
    """The pipeline-level metrics of one finished request, from its record."""
    for attempt in record.attempts:
        attempt_counter(
            channel_label(str(attempt.get("channel"))), outcome_of_code(attempt.get("error"))
        ).inc()
    # cost_usd is set once the images were delivered and charged (zero for free models).
    if record.cost_usd is not None:
        model = model_label(record.model)
        images_counter(model).inc(record.n or 1)
        usd = Decimal(record.cost_usd)
        if usd > 0:
            cost_usd.labels(model).inc(float(usd))


def record_upstream_attempt(channel: str, error: GatewayError | None) -> None:
    attempt_counter(channel_label(channel), outcome(error)).inc()


def record_images(model: str, count: int) -> None:
    if count > 0:
        images_counter(model_label(model)).inc(count)


def record_cost(model: str, usd: float | Decimal) -> None:
    if usd > 0:
        cost_usd.labels(model_label(model)).inc(float(usd))


def set_channel_up(channel: str, up: bool) -> None:
    channel_up.labels(channel_label(channel)).set(1 if up else 0)


def set_tasks(counts: Mapping[str, int]) -> None:
    """Task counts by status (statuses not given are 0)."""
    for status in TASK_STATUSES:
        tasks.labels(status).set(counts.get(status, 0))


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def exposition() -> tuple[bytes, str]:
    """The text format body and its content type; the sum of all workers in multiprocess mode."""
    if multiprocess_dir():
        registry = CollectorRegistry()
        _multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def _forget_this_process() -> None:
    # A worker that exits must not keep counting toward the live gauges (in-flight, channel_up).
    directory = multiprocess_dir()
    if directory and os.path.isdir(directory):
        _multiprocess.mark_process_dead(os.getpid(), directory)  # type: ignore[no-untyped-call]


if multiprocess_dir():
    atexit.register(_forget_this_process)
