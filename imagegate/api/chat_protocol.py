"""Wire shapes of /v1/chat/completions with chat-image models (SPEC §4), both ways.

In: ``CreateChatCompletionRequest`` (the fields a chat-image model uses) as a domain ``ChatCall``.
Out: ``chat.completion`` and ``chat.completion.chunk`` bodies from the translator's ``ChatReply``.
"""

from __future__ import annotations

import secrets
import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from imagegate.api.protocol import parse_json_object, validation_error
from imagegate.domain import ChatCall, ChatTurn, Usage
from imagegate.services.chat import ChatReply


class ImageUrlPart(BaseModel):
    url: str = Field(min_length=1)
    detail: str | None = None


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None
    image_url: ImageUrlPart | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool | None = None


class ChatCompletionBody(BaseModel):
    """Fields a chat-image model uses; the rest of OpenAI's chat fields are accepted and ignored."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    metadata: dict[str, Any] | None = None
    n: int | None = Field(default=None, ge=1, le=10)
    user: str | None = None


def parse_chat_completion(body: bytes) -> tuple[ChatCompletionBody, ChatCall]:
    data = parse_json_object(body)
    try:
        parsed = ChatCompletionBody.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None
    call = ChatCall(
        model=parsed.model,
        turns=[_turn(message) for message in parsed.messages],
        metadata=dict(parsed.metadata or {}),
        n=parsed.n,
        user=parsed.user,
        stream=bool(parsed.stream),
    )
    return parsed, call


def _turn(message: ChatMessage) -> ChatTurn:
    if isinstance(message.content, str) or message.content is None:
        return ChatTurn(role=message.role, text=message.content or "")
    text = "\n".join(part.text for part in message.content if part.type == "text" and part.text)
    images = [
        (index, part.image_url.url)
        for index, part in enumerate(message.content)
        if part.type == "image_url" and part.image_url is not None
    ]
    return ChatTurn(role=message.role, text=text, images=images)


# -- rendering -------------------------------------------------------------------------------------


def completion_id() -> str:
    return "chatcmpl-" + secrets.token_hex(12)


def usage_wire(usage: Usage | None) -> dict[str, Any]:
    usage = usage or Usage()
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "image_tokens": usage.image_tokens},
    }


def _images_wire(reply: ChatReply) -> list[dict[str, Any]]:
    # OpenRouter's shape, read by LobeChat-style clients beside the Markdown.
    return [{"type": "image_url", "image_url": {"url": url}} for url in reply.image_urls]


def completion_body(cid: str, model: str, reply: ChatReply) -> dict[str, Any]:
    return {
        "id": cid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": reply.content,
                    "refusal": None,
                    "images": _images_wire(reply),
                },
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": usage_wire(reply.usage),
    }


def chunk_body(
    cid: str, model: str, created: int, delta: dict[str, Any], finish: str | None
) -> dict[str, Any]:
    return {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


def content_delta(reply: ChatReply) -> dict[str, Any]:
    return {"content": reply.content, "images": _images_wire(reply)}
