"""Chat-image models: a chat face on an image model (SPEC §4).

The translator turns a conversation into one :class:`~imagegate.domain.ImageRequest`
(a generation, or an edit of the conversation's latest image) for the generation pipeline, and
the pipeline's result into the assistant's reply. Wire shapes stay in ``api``.

    request = translator.image_request(call, principal)
    generated = await pipeline.generate(request, principal, record, hosted=True)
    reply = chat_reply(generated)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from imagegate.domain import ChatCall, Generated, ImageRequest, Principal, Usage
from imagegate.errors import InvalidRequest, PermissionDenied, UpstreamFailed
from imagegate.services.chat_prompt import read_conversation
from imagegate.services.generation import fit_size
from imagegate.services.routing import CatalogSource

# Image fields a client may set through `metadata` (the seeds use size and quality).
_METADATA_FIELDS = ("size", "quality", "background", "output_format", "output_compression", "moderation", "n")


@dataclass(slots=True)
class ChatReply:
    """The assistant's answer: its Markdown, the image URLs in it, and the image model's usage."""

    content: str
    image_urls: list[str]
    usage: Usage | None


class ChatTranslator:
    def __init__(self, catalogs: CatalogSource, public_url: str) -> None:
        self.catalogs = catalogs
        self.own_files = f"{public_url}/files/"

    def image_request(self, call: ChatCall, principal: Principal) -> ImageRequest:
        """The image request a conversation asks for (its images are read by the pipeline)."""
        catalog = self.catalogs.current
        spec = catalog.chat_model(call.model, may_use=principal.may_use)
        if not principal.may_use(spec.name):
            raise PermissionDenied(f"This API key may not use the model '{spec.name}'.", param="model")
        assert spec.image_model is not None
        image_spec = catalog.image_model(spec.image_model)
        job = read_conversation(call.turns, self.own_files)
        metadata = {k: v for k, v in call.metadata.items() if k in _METADATA_FIELDS and v not in (None, "")}
        size = job.size or str(metadata.pop("size", "auto"))
        metadata.pop("size", None)
        # Either model may ask for the nearest size: the chat face or the image model behind it.
        policy = "nearest" if "nearest" in (spec.size_policy, image_spec.size_policy) else "strict"
        param = "size" if job.size else "metadata.size"
        size = fit_size(size, image_spec.sizes, policy, model=call.model, param=param)
        return ImageRequest(
            operation="edit" if job.images else "generate",
            model=image_spec.name,
            via_model=spec.name,
            prompt=job.prompt,
            n=call.n or _int(metadata.pop("n", 1), "metadata.n"),
            size=size,
            quality=_choice(
                metadata.get("quality"), ("low", "medium", "high", "auto", "standard", "hd"), "quality"
            ),
            background=_choice(metadata.get("background"), ("transparent", "opaque", "auto"), "background"),
            output_format=_choice(metadata.get("output_format"), ("png", "jpeg", "webp"), "output_format"),
            output_compression=(
                _int(metadata["output_compression"], "metadata.output_compression", 0, 100)
                if "output_compression" in metadata
                else None
            ),
            moderation=_choice(metadata.get("moderation"), ("auto", "low"), "moderation"),
            response_format="url",
            user=call.user,
            sources=job.images,
        )


def chat_reply(generated: Generated) -> ChatReply:
    """The assistant's Markdown: one ``![image](URL)`` per hosted image."""
    urls = [image.url for image in generated.images if image.url is not None]
    if not urls:
        raise UpstreamFailed("The image model returned no image.", code="upstream_bad_response")
    return ChatReply(
        content="\n\n".join(f"![image]({url})" for url in urls), image_urls=urls, usage=generated.usage
    )


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
