"""The error tree. Every error a client can see is one of these.

    GatewayError                      (500 server_error)
     ├── InvalidRequest               400 invalid_request_error, carries `param`
     │    └── UpstreamRejected        400-ish: the upstream's own client error, passed through
     ├── AuthenticationFailed         401 invalid_api_key
     ├── PermissionDenied             403 model_not_allowed
     ├── NotFound                     404
     │    └── ModelNotFound           404 model_not_found
     ├── PayloadTooLarge              413 request_too_large
     ├── ClientClosedRequest          499 the client left mid-request (for the logs only)
     ├── RateLimited                  429 rate_limit_exceeded / insufficient_quota
     ├── UpstreamFailed               502 upstream_error
     ├── NoHealthyChannel             503 no_healthy_channel
     ├── StorageUnavailable           503 storage_unavailable
     └── UpstreamTimeout              504 upstream_timeout

Errors are raised anywhere and turned into OpenAI's envelope in exactly one place,
`GatewayError.to_body()`, used by the HTTP error handler (and by `api.protocol.sse_error`).
"""

from __future__ import annotations

from typing import Any


class GatewayError(Exception):
    status: int = 500
    type: str = "server_error"
    code: str | None = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.headers = headers or {}

    def to_body(self) -> dict[str, Any]:
        """OpenAI's error envelope: the only place it is built."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


class InvalidRequest(GatewayError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_value"


class UpstreamRejected(InvalidRequest):
    """The upstream refused the request for a reason that is the client's (e.g. moderation)."""

    code = "upstream_rejected"


class AuthenticationFailed(GatewayError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class PermissionDenied(GatewayError):
    status = 403
    type = "invalid_request_error"
    code = "model_not_allowed"


class NotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class PayloadTooLarge(GatewayError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class ClientClosedRequest(GatewayError):
    """The client hung up before its request was read: nginx's 499; nobody receives the body."""

    status = 499
    type = "client_closed_request"
    code = "client_closed_request"


class RateLimited(GatewayError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class UpstreamFailed(GatewayError):
    status = 502
    type = "upstream_error"
    code = "upstream_error"


class NoHealthyChannel(GatewayError):
    status = 503
    type = "server_error"
    code = "no_healthy_channel"


class StorageUnavailable(GatewayError):
    """The result could not be stored; nothing is charged."""

    status = 503
    type = "server_error"
    code = "storage_unavailable"


class UpstreamTimeout(GatewayError):
    status = 504
    type = "upstream_error"
    code = "upstream_timeout"
