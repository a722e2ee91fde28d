"""Google's native image generation ("nano banana") through the Gemini API's ``generateContent``.

A channel::

    [[channels]]
    name = "banana"
    provider = "gemini"
    api_key = "env:GEMINI_API_KEY"          # sent as x-goog-api-key, never in the URL
    models = ["gemini-2.5-flash-image", "gemini-3-pro-image-preview"]
    options = { image_sizes = true }        # see below

How OpenAI's request maps onto Gemini's:

- ``size`` → ``imageConfig.aspectRatio`` (nearest of Gemini's ten ratios) and, where the model
  takes it, ``imageConfig.imageSize`` (1K/2K/4K by the long side); ``auto`` sends neither. The
  response's ``size`` is measured on the returned image, so the client sees what it got.
- ``n`` → n concurrent calls (Gemini image models make one candidate per call); images are
  concatenated and usage summed.
- Edits send every input image as an ``inlineData`` part after the prompt. Gemini takes no
  mask: one is refused with a 400 unless ``options.mask_as_image`` sends it as one more image
  with a sentence telling the model what it is.
- ``output_format`` is left to the gateway, which transcodes Gemini's PNG/JPEG bytes.

Channel options: ``image_sizes`` (send ``imageSize``; default on for Pro and 3.x models),
``mask_as_image`` (default off), ``response_modalities`` (default ``["TEXT", "IMAGE"]``, so a
refusal comes with the model's explanation) and ``safety_settings`` (sent as ``safetySettings``).
"""

from __future__ import annotations

import asyncio
import base64
import math
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import orjson

from imagegate.domain import GeneratedImage, ImageBlob, ImageRequest, ImageResult, ProviderEvent, Usage
from imagegate.errors import (
    GatewayError,
    InvalidRequest,
    UpstreamFailed,
    UpstreamRejected,
)
from imagegate.media.transcode import measured_size
from imagegate.providers.base import Provider
from imagegate.providers.gemini_sizes import image_config, supports_image_size
from imagegate.providers.upstream import (
    UpstreamClient,
    UpstreamError,
    error_object,
    parse_usage,
    token_count,
)
from imagegate.providers.upstream_errors import (
    bad_response,
    credentials_rejected,
    json_object,
    model_not_served,
    rate_limited,
)

if TYPE_CHECKING:
    from imagegate.http import HttpClients
    from imagegate.settings import ChannelConfig

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com/v1beta"
_MASK_NOTE = (
    "The last image is a mask for the first one: change only the areas where the mask is "
    "transparent and keep everything else exactly as it is."
)


class GeminiProvider(Provider):
    name = "gemini"
    can_stream = False
    can_edit = True
    needs_key = True

    def __init__(self, channel: ChannelConfig, http: HttpClients) -> None:
        super().__init__(channel, http)
        self.upstream = UpstreamClient(
            channel,
            http,
            default_base_url=DEFAULT_BASE_URL,
            # Sent as a header, never in the URL, where proxies and logs would keep it.
            headers={"x-goog-api-key": channel.api_key, "Content-Type": "application/json"},
            map_error=gemini_error,
        )

    async def generate(self, request: ImageRequest, upstream_model: str) -> AsyncIterator[ProviderEvent]:
        yield await self._run(request, upstream_model, [{"text": request.prompt}])

    async def edit(self, request: ImageRequest, upstream_model: str) -> AsyncIterator[ProviderEvent]:
        mask_as_image = bool(self.channel.options.get("mask_as_image", False))
        if request.mask is not None and not mask_as_image:
            raise InvalidRequest(
                "Gemini image models take no mask: describe the area to change in the prompt "
                "and send the image without a mask.",
                param="mask",
                code="unsupported_parameter",
            )
        prompt = request.prompt
        images = list(request.images)
        if request.mask is not None:
            prompt = f"{prompt}\n\n{_MASK_NOTE}"
            images.append(request.mask)
        parts: list[dict[str, Any]] = [{"text": prompt}]
        for image in images:
            data = base64.b64encode(image.data).decode("ascii")
            parts.append({"inlineData": {"mimeType": f"image/{image.format}", "data": data}})
        yield await self._run(request, upstream_model, parts)

    # -- one request --------------------------------------------------------------------------

    def _body(self, upstream_model: str, size: str, parts: list[dict[str, Any]]) -> dict[str, Any]:
        options = self.channel.options
        modalities = options.get("response_modalities") or ["TEXT", "IMAGE"]
        generation: dict[str, Any] = {"responseModalities": list(modalities)}
        with_image_size = bool(options.get("image_sizes", supports_image_size(upstream_model)))
        if config := image_config(size, with_image_size=with_image_size):
            generation["imageConfig"] = config
        body: dict[str, Any] = {
            "contents": [{"role": "user", "parts": parts}],
            "generationConfig": generation,
        }
        if options.get("safety_settings"):
            body["safetySettings"] = options["safety_settings"]
        return body

    async def _run(
        self, request: ImageRequest, upstream_model: str, parts: list[dict[str, Any]]
    ) -> ImageResult:
        # Serialised once: an edit's base64 images are megabytes, and n calls share them.
        payload = orjson.dumps(self._body(upstream_model, request.size, parts))
        answers = await _concurrently([self._call(payload, upstream_model) for _ in range(request.n)])
        images = [image for answer in answers for image in answer.images]
        usages = [answer.usage for answer in answers if answer.usage is not None]
        usage = Usage.combined(usages) if usages else None
        first = images[0].blob
        assert first is not None  # _read_answer makes blobs only
        return ImageResult(
            images=images, usage=usage, size=await measured_size(first), output_format=first.format
        )

    async def _call(self, payload: bytes, upstream_model: str) -> Answer:
        model = quote(upstream_model.removeprefix("models/"), safe="")
        async with self.upstream.post(
            f"/models/{model}:generateContent", upstream_model, data=payload
        ) as response:
            raw = await response.read()
        try:
            return _read_answer(raw)
        except (ValueError, TypeError) as exc:  # a field of the answer had the wrong shape
            raise bad_response(f"channel {self.channel.name}: the upstream's answer was malformed") from exc


def gemini_error(failure: UpstreamError) -> GatewayError:
    """Google's error envelope (``{"error": {code, message, status, details}}``) as our error."""
    status = failure.status or 502
    error = error_object(failure.body)
    message = str(error.get("message") or f"Gemini answered HTTP {status}")
    google_status = str(error.get("status") or "")
    channel = failure.channel
    # Google answers a wrong key with 400 INVALID_ARGUMENT (reason API_KEY_INVALID): that is
    # this gateway's credential failing, a 502, never the client's 400 or 401.
    if status in (401, 403) or "API_KEY_INVALID" in _reasons(error):
        return credentials_rejected(channel)
    if status == 404:
        return model_not_served(channel, failure.upstream_model, message)
    if status == 429 or google_status == "RESOURCE_EXHAUSTED":
        return rate_limited(failure.headers.get("Retry-After") or _retry_delay(error))
    # FAILED_PRECONDITION is the account's problem (billing, region), not the request's.
    if status in (400, 413, 422) and google_status != "FAILED_PRECONDITION":
        return UpstreamRejected(message, code="upstream_rejected", status=413 if status == 413 else 400)
    return UpstreamFailed(f"channel {channel.name}: the upstream answered HTTP {status}: {message}")


async def _concurrently(calls: list[Coroutine[Any, Any, Answer]]) -> list[Answer]:
    """Await the calls together; the first failure cancels the rest and is raised as it is."""
    if len(calls) == 1:
        return [await calls[0]]
    tasks = [asyncio.ensure_future(call) for call in calls]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


# -- reading Gemini's answers -------------------------------------------------------------------

# finishReasons that mean a safety system stopped the image, and what each means to a client.
_SAFETY_REASONS = {
    "SAFETY": "the response was flagged by Google's safety filters",
    "IMAGE_SAFETY": "the generated image was flagged by Google's safety filters",
    "PROHIBITED_CONTENT": "the request involves content Google prohibits",
    "IMAGE_PROHIBITED_CONTENT": "the generated image showed content Google prohibits",
    "BLOCKLIST": "the request contains a term on Google's blocklist",
    "SPII": "the request may contain sensitive personal information",
}
# promptFeedback.blockReason: the prompt itself was refused before anything was generated.
_BLOCK_REASONS = {
    "SAFETY": "it was flagged by Google's safety filters",
    "BLOCKLIST": "it contains a term on Google's blocklist",
    "PROHIBITED_CONTENT": "it involves content Google prohibits",
    "IMAGE_SAFETY": "an input image was flagged by Google's safety filters",
}
_MAX_MODEL_TEXT = 500


@dataclass(slots=True)
class Answer:
    images: list[GeneratedImage]
    usage: Usage | None


def _read_answer(raw: bytes) -> Answer:
    """The images and usage of one ``generateContent`` answer; a refusal becomes a 400."""
    body = json_object(raw)
    feedback = body.get("promptFeedback")
    if isinstance(feedback, dict) and feedback.get("blockReason"):
        reason = str(feedback["blockReason"])
        why = _BLOCK_REASONS.get(reason, "of Google's content policy")
        raise UpstreamRejected(
            f"Gemini blocked the prompt because {why} (blockReason {reason}). "
            "Change the prompt or the input images and try again.",
            code="moderation_blocked",
            param="prompt",
        )
    candidates = body.get("candidates")
    if not isinstance(candidates, list) or not candidates or not isinstance(candidates[0], dict):
        raise bad_response("Gemini answered without a candidate")
    images: list[GeneratedImage] = []
    texts: list[str] = []
    for candidate in candidates:
        _collect(candidate, images, texts)
    if images:
        return Answer(images, _usage(body.get("usageMetadata")))
    first = candidates[0]
    reason = str(first.get("finishReason") or "FINISH_REASON_UNSPECIFIED")
    said = " ".join(texts).strip() or str(first.get("finishMessage") or "").strip()
    said = f" The model said: {said[:_MAX_MODEL_TEXT]}" if said else ""
    if reason in _SAFETY_REASONS:
        raise UpstreamRejected(
            f"Gemini refused to make this image: {_SAFETY_REASONS[reason]} (finishReason {reason}).{said}",
            code="moderation_blocked",
            param="prompt",
        )
    # NO_IMAGE, IMAGE_OTHER, RECITATION, MAX_TOKENS, a plain STOP with only text...: the model
    # answered but drew nothing, which rephrasing the prompt usually fixes.
    raise UpstreamRejected(
        f"Gemini made no image (finishReason {reason}).{said}", code="no_image", param="prompt"
    )


def _collect(candidate: Any, images: list[GeneratedImage], texts: list[str]) -> None:
    content = candidate.get("content") if isinstance(candidate, dict) else None
    parts = content.get("parts") if isinstance(content, dict) else None
    for part in parts if isinstance(parts, list) else []:
        # Gemini 3 Pro shows interim "thought" images while it reasons; only the final ones count.
        if not isinstance(part, dict) or part.get("thought"):
            continue
        inline = part.get("inlineData") or part.get("inline_data")
        if isinstance(inline, dict):
            data = inline.get("data")
            mime = str(inline.get("mimeType") or inline.get("mime_type") or "")
            if isinstance(data, str) and data and mime.startswith("image/"):
                images.append(GeneratedImage(blob=ImageBlob.from_b64(data)))
        elif isinstance(part.get("text"), str):
            texts.append(part["text"])


def _usage(meta: Any) -> Usage | None:
    """``usageMetadata`` as image usage: prompt tokens in (split by modality), candidate tokens out."""
    if meta is None:
        return None
    if not isinstance(meta, dict):
        return parse_usage(meta)  # not an object: malformed
    prompt = token_count(meta.get("promptTokenCount"), "promptTokenCount")
    details = _by_modality(meta.get("promptTokensDetails"), "promptTokensDetails")
    output = meta.get("candidatesTokenCount")
    if output is None:
        output = _by_modality(meta.get("candidatesTokensDetails"), "candidatesTokensDetails").get("IMAGE", 0)
    return parse_usage(
        {
            "input_tokens": prompt,
            "output_tokens": output,
            "input_tokens_details": {
                # Without a breakdown a prompt is all text (an edit's answer always carries one).
                "text_tokens": details.get("TEXT", 0) if details else prompt,
                "image_tokens": details.get("IMAGE", 0),
            },
        }
    )


def _by_modality(details: Any, field: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in details if isinstance(details, list) else []:
        if isinstance(item, dict):
            modality = str(item.get("modality") or "")
            counts[modality] = counts.get(modality, 0) + token_count(item.get("tokenCount"), field)
    return counts


def _reasons(error: dict[str, Any]) -> set[str]:
    details = error.get("details")
    return {
        str(item.get("reason"))
        for item in (details if isinstance(details, list) else [])
        if isinstance(item, dict) and item.get("reason")
    }


def _retry_delay(error: dict[str, Any]) -> str | None:
    """Seconds from a ``google.rpc.RetryInfo`` detail (``"retryDelay": "37s"``), as Retry-After."""
    for item in error.get("details") or []:
        delay = item.get("retryDelay") if isinstance(item, dict) else None
        if isinstance(delay, str) and delay.endswith("s"):
            try:
                return str(max(1, math.ceil(float(delay[:-1]))))
            except ValueError:
                return None
    return None
