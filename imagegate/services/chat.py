"""Chat-image models: a chat face on an image model (SPEC §4).

A conversation becomes one image request (generation or edit) run by the image service; the
images come back as Markdown in an assistant message, streamed as chunks or not.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

from imagegate.api.chat_protocol import ChatCompletionBody
from imagegate.domain import ImageRequest, ImageResult, Principal, Usage
from imagegate.errors import InvalidRequest, PermissionDenied, UpstreamFailed
from imagegate.media.sizes import check_size
from imagegate.services.chat_prompt import read_conversation
from imagegate.services.images import ImageService
from imagegate.services.inputs import InputLoader

# Image fields a client may set through `metadata` (the seeds use size and quality).
_METADATA_FIELDS = ("size", "quality", "background", "output_format", "output_compression", "moderation", "n")


@dataclasses.dataclass
class ChatImageReply:
    content: str
    usage: Usage | None


class ChatImageService:
    def __init__(self, images: ImageService, inputs: InputLoader) -> None:
        self.images = images
        self.inputs = inputs

    async def build_request(self, body: ChatCompletionBody, principal: Principal) -> ImageRequest:
        spec = self.images.catalog.chat_model(body.model)
        if not principal.may_use(spec.name):
            raise PermissionDenied(f"This API key may not use the model '{spec.name}'.", param="model")
        assert spec.image_model is not None
        image_spec = self.images.catalog.image_model(spec.image_model)
        job = read_conversation(body.messages, f"{self.images.public_url}/files/")
        metadata = {
            k: v for k, v in (body.metadata or {}).items() if k in _METADATA_FIELDS and v not in (None, "")
        }
        size = job.size or str(metadata.pop("size", "auto"))
        metadata.pop("size", None)
        check_size(size, image_spec.sizes, model=body.model, param="size" if job.size else "metadata.size")
        request = ImageRequest(
            operation="edit" if job.images else "generate",
            model=image_spec.name,
            prompt=job.prompt,
            n=body.n or _int(metadata.pop("n", 1), "metadata.n"),
            size=size,
            quality=_choice(
                metadata.get("quality"), ("low", "medium", "high", "auto", "standard", "hd"), "quality"
            ),
            background=_choice(metadata.get("background"), ("transparent", "opaque", "auto"), "background"),
            output_format=_choice(metadata.get("output_format"), ("png", "jpeg", "webp"), "output_format"),  # type: ignore[arg-type]
            output_compression=(
                _int(metadata["output_compression"], "metadata.output_compression", 0, 100)
                if "output_compression" in metadata
                else None
            ),
            moderation=_choice(metadata.get("moderation"), ("auto", "low"), "moderation"),
            response_format="url",
            user=body.user,
        )
        if job.images:
            request.images, request.mask = await self.inputs.load_edit_inputs(job.images, None)
        return request

    async def events(self, request: ImageRequest, principal: Principal) -> AsyncIterator[ImageResult]:
        # The chat model's permission was checked; the image model it is bound to comes with it.
        inner = dataclasses.replace(principal, models=None)
        async for event in self.images.events(request, inner):
            if isinstance(event, ImageResult):
                yield event

    async def reply(self, request: ImageRequest, result: ImageResult) -> ChatImageReply:
        body = await self.images.render_response(request, result)
        urls = [item["url"] for item in body["data"] if "url" in item]
        if not urls:
            raise UpstreamFailed("The image model returned no image.", code="upstream_bad_response")
        content = "\n\n".join(f"![image]({url})" for url in urls)
        return ChatImageReply(content=content, usage=result.usage)


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


def completion_body(cid: str, model: str, reply: ChatImageReply) -> dict[str, Any]:
    return {
        "id": cid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply.content, "refusal": None},
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


def _choice(value: Any, allowed: tuple[str, ...], name: str) -> Any:
    if value is None:
        return None
    if value not in allowed:
        raise InvalidRequest(
            f"Invalid value for 'metadata.{name}': {value!r}; expected one of {', '.join(allowed)}.",
            param=f"metadata.{name}",
        )
    return value


def _int(value: Any, param: str, low: int = 1, high: int = 10) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = low - 1
    if not low <= number <= high:
        raise InvalidRequest(
            f"Invalid value for '{param}': expected an integer from {low} to {high}.", param=param
        )
    return number
