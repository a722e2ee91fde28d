"""Error bodies that echo the channel's key everywhere a careless upstream might put it.

Real upstreams do this: OpenAI quotes part of a wrong key in its message, proxies echo the
request (headers included) into ``param`` or a ``details`` list. Every fake upstream can answer
with one (``echo_key_in_errors``), so a test proves the gateway scrubs each string it passes on.
"""

from __future__ import annotations

from typing import Any


def leaky_error(key: str, *, type_: str = "invalid_request_error") -> dict[str, Any]:
    """An OpenAI-style ``error`` object with the key in message, param, code and nested parts."""
    return {
        "message": f"Request rejected for key {key}.",
        "type": type_,
        "param": f"headers.authorization=Bearer {key}",
        "code": f"bad_key_{key}",
        "details": [{"reason": key, "echo": {"authorization": f"Bearer {key}", "list": [key]}}],
    }


def leaky_google_error(status: int, key: str) -> dict[str, Any]:
    """Google's envelope with the key in message, status and nested details."""
    return {
        "error": {
            "code": status,
            "message": f"Request with key {key} failed.",
            "status": f"INVALID_ARGUMENT:{key}",
            "details": [{"@type": "type.googleapis.com/google.rpc.DebugInfo", "detail": key, "stack": [key]}],
        }
    }
