"""Access to the app's long-lived parts from a route."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request

from imagegate.domain import Principal
from imagegate.observability import note

if TYPE_CHECKING:
    from imagegate.app import Gateway


def gateway(request: Request) -> Gateway:
    gw: Gateway = request.app.state.gateway
    return gw


async def principal(request: Request) -> Principal:
    who = await gateway(request).auth.authenticate(request.headers.get("authorization"))
    note(key_id=who.key_id)
    return who
