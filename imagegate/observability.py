"""The record of one request: facts gathered as it travels, written as a log line and a log row.

Whoever starts a request makes its :class:`RequestRecord` and hands it on explicitly: the HTTP
middleware for API calls, the task runner for async tasks. The generation pipeline fills in what
it learns (model, channel, attempts, cost, error); the starter adds status and timings and
submits it to the request log.
"""

from __future__ import annotations

import logging
import operator
from dataclasses import dataclass, field, fields
from typing import Any

import orjson

access_logger = logging.getLogger("imagegate.access")


@dataclass(slots=True)
class RequestDetail:
    """What an image request asked for and got: the console's gallery and detail view show it.

    Kept beside the log row (not in the access log line): prompts can be long and private.
    ``inputs`` and ``outputs`` are ``{"url": …, "role": "image" | "mask"}`` and
    ``{"url": …, "revised_prompt": …}``: links only, never image bytes.
    """

    prompt: str
    params: dict[str, Any] = field(default_factory=dict)
    inputs: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def worth_keeping(self) -> bool:
        """Whether there is an image to show: requests answered in base64 only leave no link."""
        return bool(self.outputs or self.inputs)


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
    #: The prompt, parameters and image links of an image request (kept beside the log row).
    detail: RequestDetail | None = None

    def failed(self, error_type: str, code: str | None, message: str) -> None:
        """Record the error the request ended with (HTTP error body or stream error event alike)."""
        self.error_type, self.error_code, self.error_message = error_type, code or error_type, message

    def log_line(self) -> str:
        # Not dataclasses.asdict: it deep-copies every value, a measurable cost on every request.
        values = zip(_FIELD_NAMES, _field_values(self), strict=True)
        facts = {name: value for name, value in values if value is not None}
        if not self.attempts:
            del facts["attempts"]
        return orjson.dumps(facts).decode()


_FIELD_NAMES = tuple(f.name for f in fields(RequestRecord) if f.name != "detail")
_field_values = operator.attrgetter(*_FIELD_NAMES)
