"""Per-request facts gathered as a request travels, written as one structured log line at its end.

The middleware opens a :class:`RequestRecord` in a context variable; services fill in what they
learn (key, model, channel, error) without being handed the HTTP request.
"""

from __future__ import annotations

import logging
import secrets
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from imagegate.errors import GatewayError

access_logger = logging.getLogger("imagegate.access")


def new_request_id() -> str:
    return "req_" + secrets.token_hex(12)


@dataclass(slots=True)
class RequestRecord:
    request_id: str
    method: str
    endpoint: str
    key_id: str | None = None
    group: str | None = None
    model: str | None = None
    channel: str | None = None
    upstream_model: str | None = None
    upstream_request_id: str | None = None
    stream: bool | None = None
    n: int | None = None
    size: str | None = None
    quality: str | None = None
    user: str | None = None
    client_ip: str | None = None
    status: int = 0
    latency_ms: float = 0.0
    ttfb_ms: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: str | None = None
    error_type: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    #: Every channel tried, in order: {"channel": ..., "error": code or None, "ms": ...}.
    attempts: list[dict[str, Any]] = field(default_factory=list)

    def log_line(self) -> str:
        return orjson.dumps({k: v for k, v in asdict(self).items() if v not in (None, [])}).decode()


_current: ContextVar[RequestRecord | None] = ContextVar("imagegate_request", default=None)


def current_record() -> RequestRecord | None:
    return _current.get()


def start_record(record: RequestRecord) -> None:
    _current.set(record)


def note(**facts: Any) -> None:
    """Record facts about the current request (a no-op outside one, e.g. in the CLI)."""
    record = _current.get()
    if record is not None:
        for name, value in facts.items():
            setattr(record, name, value)


def note_error(error: GatewayError) -> None:
    """Record the error a request ended with (HTTP error body or SSE error event alike)."""
    note(error_type=error.type, error_code=error.code or error.type, error_message=error.message)
