"""The OpenAPI document of the client API (``/v1``), served at ``GET /v1/openapi.json``.

The /v1 routes are plain Starlette routes that parse their own bodies (no FastAPI schema), so the
request bodies here are generated from the same pydantic wire models that parse them
(`api.protocol`, `api.chat_protocol`): the document cannot drift from what the gateway accepts.
Multipart edits are described by their JSON twin; the fields are the same.

    document = v1_openapi()      # a dict; the route serves it as JSON
"""

from __future__ import annotations

from functools import cache
from typing import Any

import orjson
from fastapi import APIRouter
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import Response

from imagegate import __version__
from imagegate.api.chat_protocol import ChatCompletionBody
from imagegate.api.protocol import ImageFields, JsonEditBody

OPENAPI_PATH = "/v1/openapi.json"
_REF = "#/components/schemas/{model}"

router = APIRouter()


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF.format(model=name)}


_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}
_IMAGES_RESPONSE = {
    "type": "object",
    "required": ["created", "data"],
    "properties": {
        "created": {"type": "integer"},
        "data": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "url": {"type": "string"},
                    "b64_json": {"type": "string"},
                    "revised_prompt": {"type": "string"},
                },
            },
        },
    },
}
_MODEL = {
    "type": "object",
    "required": ["id", "object", "created", "owned_by"],
    "properties": {
        "id": {"type": "string"},
        "object": {"const": "model"},
        "created": {"type": "integer"},
        "owned_by": {"type": "string"},
    },
}
_MODEL_LIST = {
    "type": "object",
    "required": ["object", "data"],
    "properties": {"object": {"const": "list"}, "data": {"type": "array", "items": _ref("Model")}},
}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _responses(ok: str, ok_content: dict[str, Any]) -> dict[str, Any]:
    error = {"description": "OpenAI's error envelope", "content": _json(_ref("Error"))}
    return {"200": {"description": ok, "content": ok_content}, "default": error}


def _post(summary: str, body: type[BaseModel], ok: dict[str, Any], operation_id: str) -> dict[str, Any]:
    return {
        "post": {
            "operationId": operation_id,
            "summary": summary,
            "requestBody": {"required": True, "content": _json(_ref(body.__name__))},
            "responses": _responses("the result, or an event stream when 'stream' is true", ok),
        }
    }


@cache
def v1_openapi() -> dict[str, Any]:
    """The document (built once; it depends only on the code)."""
    models: list[tuple[type[BaseModel], Any]] = [
        (ImageFields, "validation"),
        (JsonEditBody, "validation"),
        (ChatCompletionBody, "validation"),
    ]
    _, definitions = models_json_schema(models, ref_template=_REF)
    schemas: dict[str, Any] = dict(definitions.get("$defs", {}))
    schemas.update(Error=_ERROR, ImagesResponse=_IMAGES_RESPONSE, Model=_MODEL, ModelList=_MODEL_LIST)
    images_ok = _json(_ref("ImagesResponse")) | {"text/event-stream": {"schema": {"type": "string"}}}
    chat_ok = _json({"type": "object"}) | {"text/event-stream": {"schema": {"type": "string"}}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "imagegate client API",
            "version": __version__,
            "description": "OpenAI-compatible image generation. Send a key as 'Authorization: Bearer sk-…'.",
        },
        "paths": {
            "/v1/images/generations": _post("Create images", ImageFields, images_ok, "createImage"),
            "/v1/images/edits": _post("Edit images (JSON body)", JsonEditBody, images_ok, "editImage"),
            "/v1/chat/completions": _post(
                "Chat with a chat-image model", ChatCompletionBody, chat_ok, "createChatCompletion"
            ),
            "/v1/models": {
                "get": {
                    "operationId": "listModels",
                    "summary": "The models this key may use",
                    "responses": _responses("the list", _json(_ref("ModelList"))),
                }
            },
            "/v1/models/{model}": {
                "get": {
                    "operationId": "retrieveModel",
                    "summary": "One model",
                    "parameters": [
                        {"name": "model", "in": "path", "required": True, "schema": {"type": "string"}}
                    ],
                    "responses": _responses("the model", _json(_ref("Model"))),
                }
            },
        },
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }


async def openapi_document(request: Request) -> Response:
    # Public, like /admin/openapi.json: it describes the API; every call still needs a key.
    return Response(orjson.dumps(v1_openapi()), media_type="application/json")


router.add_route(OPENAPI_PATH, openapi_document, methods=["GET"])
