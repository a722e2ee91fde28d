"""Where the gateway is and which key to use; the ``openai`` client built from them; its errors as CliError.

The server and key come from ``--base-url`` / ``--api-key``, else ``IMAGEGATE_BASE_URL`` /
``IMAGEGATE_API_KEY``, else ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY`` (SPEC §9). A base URL without a
path (``http://host:8080``) means the gateway's ``/v1``; one with a path is used as given.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import openai

from imagegate.cli.common import CliError

#: A long generation (4K, high quality) takes minutes; the SDK's default of 10 minutes is kept.
TIMEOUT_S = 600.0
TIMEOUT = httpx.Timeout(TIMEOUT_S, connect=10.0)


@dataclass(frozen=True)
class Connection:
    base_url: str  # ends with the API root, e.g. http://127.0.0.1:8080/v1
    api_key: str

    def openai_client(self) -> openai.OpenAI:
        # No retries: a retried image request is billed twice, and the user sees the first error.
        return openai.OpenAI(base_url=self.base_url, api_key=self.api_key, max_retries=0, timeout=TIMEOUT_S)

    def http_client(self) -> httpx.Client:
        """A plain client for the endpoints the SDK does not know (the async tasks API)."""
        return httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {self.api_key}"},
            timeout=TIMEOUT,
        )


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--base-url",
        metavar="URL",
        help="the gateway (default: $IMAGEGATE_BASE_URL, else $OPENAI_BASE_URL)",
    )
    parser.add_argument(
        "--api-key", metavar="KEY", help="the API key (default: $IMAGEGATE_API_KEY, else $OPENAI_API_KEY)"
    )


def connection_from(args: argparse.Namespace) -> Connection:
    base_url = _first(args.base_url, "IMAGEGATE_BASE_URL", "OPENAI_BASE_URL")
    api_key = _first(args.api_key, "IMAGEGATE_API_KEY", "OPENAI_API_KEY")
    if not base_url:
        raise CliError(
            "no gateway URL: pass --base-url or set IMAGEGATE_BASE_URL (or OPENAI_BASE_URL)", exit_code=2
        )
    if not api_key:
        raise CliError("no API key: pass --api-key or set IMAGEGATE_API_KEY (or OPENAI_API_KEY)", exit_code=2)
    return Connection(base_url=api_root(base_url), api_key=api_key)


def api_root(base_url: str) -> str:
    parts = urlsplit(base_url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise CliError(f"the gateway URL must be http(s)://host[:port][/path], not {base_url!r}", exit_code=2)
    root = base_url.strip().rstrip("/")
    return root if parts.path.strip("/") else f"{root}/v1"


@contextmanager
def gateway_errors(connection: Connection) -> Iterator[None]:
    """Turn the SDK's and httpx's failures into one line: the gateway's own message when it sent one."""
    try:
        yield
    except openai.APIStatusError as exc:
        raise CliError(describe_status(exc.status_code, exc.body, exc.response.headers, exc.message)) from exc
    except openai.APIConnectionError as exc:
        raise CliError(f"cannot reach the gateway at {connection.base_url}: {exc.__cause__ or exc}") from exc
    except openai.APIError as exc:  # an `event: error` inside a stream
        raise CliError(error_message(exc.body) or exc.message) from exc
    except httpx.TransportError as exc:
        raise CliError(f"cannot reach the gateway at {connection.base_url}: {exc}") from exc


def describe_status(status: int, body: object, headers: Mapping[str, str], fallback: str) -> str:
    message = error_message(body) or fallback
    request_id = headers.get("x-request-id")
    return f"{message} (HTTP {status}" + (f", request {request_id})" if request_id else ")")


def error_message(body: object) -> str | None:
    """The message of an OpenAI error body, whether given whole (``{"error": {...}}``) or unwrapped."""
    if isinstance(body, dict):
        inner: Any = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
    return None


def request_id(headers: Mapping[str, str]) -> str:
    """The response's ``X-Request-Id``, which names the files it is saved as."""
    value = headers.get("x-request-id")
    if not value:
        raise CliError("the gateway's response has no X-Request-Id header to name the saved files by")
    return value


def response_object(text: str) -> dict[str, Any]:
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise CliError("the gateway's response is not JSON") from exc
    if not isinstance(body, dict):
        raise CliError("the gateway's response is not a JSON object")
    return body


def _first(flag: str | None, *env_names: str) -> str | None:
    if flag:
        return flag
    for name in env_names:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None
