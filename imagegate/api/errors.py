"""Turning exceptions into OpenAI's error envelope: every HTTP error body is built here."""

from __future__ import annotations

import logging

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from imagegate.api.deps import record_of
from imagegate.errors import ClientClosedRequest, GatewayError, InvalidRequest, NotFound
from imagegate.observability import RequestRecord

logger = logging.getLogger("imagegate.errors")

_HTTP_STATUS_ERRORS: dict[int, type[GatewayError]] = {404: NotFound}


def error_response(error: GatewayError, record: RequestRecord | None = None) -> Response:
    """The HTTP answer for ``error``, noted in the request's record."""
    if record is not None:
        record.failed(error.type, error.code, error.message)
    return Response(
        orjson.dumps(error.to_body()),
        status_code=error.status,
        media_type="application/json",
        headers=error.headers,
    )


async def _gateway_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    return error_response(exc, record_of(request))


async def _client_gone(request: Request, exc: Exception) -> Response:
    """A client that hangs up mid-body is not the gateway's fault: 499 in the logs, no traceback."""
    logger.info("client closed the connection during %s %s", request.method, request.url.path)
    return error_response(
        ClientClosedRequest("The client closed the connection before the request body was read."),
        record_of(request),
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if isinstance(exc.__cause__, ClientDisconnect):
        return await _client_gone(request, exc.__cause__)  # FastAPI's body reader wraps it as a 400
    cls = _HTTP_STATUS_ERRORS.get(exc.status_code, GatewayError)
    if exc.status_code == 404:
        message = f"Unknown path: {request.method} {request.url.path}"
    else:
        message = str(exc.detail)
    return error_response(
        cls(message, status=exc.status_code, code="http_error" if cls is GatewayError else None),
        record_of(request),
    )


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    loc = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path")]
    return error_response(
        InvalidRequest(
            f"Invalid request: {str(first.get('msg', 'invalid')).removeprefix('Value error, ')}.",
            param=".".join(loc) or None,
        ),
        record_of(request),
    )


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(
        GatewayError("The gateway hit an internal error; the request was not completed."), record_of(request)
    )


async def exception_response(request: Request, exc: Exception) -> Response:
    """The answer to ``exc`` for a route dispatched outside FastAPI (`imagegate.api.hot_routes`)."""
    if isinstance(exc, GatewayError):
        return await _gateway_error(request, exc)
    if isinstance(exc, ClientDisconnect):
        return await _client_gone(request, exc)
    if isinstance(exc, HTTPException):
        return await _http_error(request, exc)
    return await _unexpected_error(request, exc)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(GatewayError, _gateway_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(ClientDisconnect, _client_gone)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected_error)
