"""Wire models for /v1/chat/completions with chat-image models (SPEC §4)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from imagegate.api.protocol import parse_json_object, validation_error


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


def parse_chat_completion(body: bytes) -> ChatCompletionBody:
    data = parse_json_object(body)
    try:
        return ChatCompletionBody.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None
