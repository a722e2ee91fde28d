"""What a route takes from the running gateway: the caller, the request's record, one service.

The gateway's parts are built once per process (``services.gateway``) and kept on the app; routes
ask for the single service they use rather than reaching through the whole.
"""

from __future__ import annotations

from starlette.requests import Request

from imagegate.domain import Principal, new_request_id
from imagegate.observability import RequestRecord
from imagegate.providers.registry import Catalog
from imagegate.services.chat import ChatTranslator
from imagegate.services.gateway import Gateway
from imagegate.services.generation import GenerationPipeline

#: Where the middleware keeps the request's record in the ASGI scope.
RECORD_SCOPE_KEY = "imagegate.record"


def gateway(request: Request) -> Gateway:
    gw: Gateway = request.app.state.gateway
    return gw


def generation(request: Request) -> GenerationPipeline:
    return gateway(request).generation


def chat_translator(request: Request) -> ChatTranslator:
    return gateway(request).chat


def catalog(request: Request) -> Catalog:
    return gateway(request).catalogs.current


def record_of(request: Request) -> RequestRecord:
    """The request's record, opened by the middleware (a detached one where there is none)."""
    record = request.scope.get(RECORD_SCOPE_KEY)
    if record is None:
        record = RequestRecord(request_id=new_request_id(), method=request.method, endpoint=request.url.path)
        request.scope[RECORD_SCOPE_KEY] = record
    assert isinstance(record, RequestRecord)
    return record


async def principal(request: Request) -> Principal:
    record = record_of(request)
    who = await gateway(request).auth.authenticate(request.headers.get("authorization"), record.client_ip)
    record.key_id, record.group = who.key_id, who.group
    return who
