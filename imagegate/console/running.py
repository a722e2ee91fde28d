"""The running gateway, as the console's routes reach it (typed, like ``api.deps``)."""

from __future__ import annotations

from starlette.requests import Request

from imagegate.services.gateway import Gateway


def gateway(request: Request) -> Gateway:
    gw: Gateway = request.app.state.gateway
    return gw
