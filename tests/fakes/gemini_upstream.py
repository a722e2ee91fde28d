"""A loopback server that speaks the Gemini API's ``generateContent``, for the gemini provider's tests.

Like Google's own: the key comes in ``x-goog-api-key`` (a wrong one is a 400 INVALID_ARGUMENT
with reason API_KEY_INVALID, a missing one a 403), JSON is camelCase and unknown fields are
refused, ``imageConfig.aspectRatio`` must be one of the ten ratios and ``imageSize`` is taken
only by Pro models. Images are real Pillow PNGs at the pixels Google documents for the ratio
and size, so a test can check what a client finally sees::

    with FakeGeminiUpstream() as up:                       # or: async with FakeGeminiUpstream() as up
        channel = {"provider": "gemini", "base_url": up.base_url, "api_key": up.api_key, ...}
        up.finish_reason = "IMAGE_SAFETY"                   # knobs are plain attributes, read per request
        ...
        assert up.requests[-1].image_config == {"aspectRatio": "3:2"}
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from multidict import CIMultiDict
from PIL import Image, ImageDraw

from imagegate.providers.gemini_sizes import ASPECT_RATIOS, PIXELS, nearest_aspect_ratio
from tests.fakes.leaks import leaky_google_error
from tests.fakes.loopback import LoopbackServer

MODELS = ("gemini-2.5-flash-image", "gemini-3-pro-image-preview", "gemini-3-pro-image")
_RATIOS = {f"{a}:{b}" for a, b in ASPECT_RATIOS}
_TOP_LEVEL = {"contents", "generationConfig", "safetySettings", "systemInstruction", "tools", "toolConfig"}
_GENERATION = {
    "responseModalities",
    "imageConfig",
    "candidateCount",
    "temperature",
    "topP",
    "topK",
    "seed",
    "maxOutputTokens",
    "thinkingConfig",
}
_IMAGE_CONFIG = "* GenerateContentRequest.generation_config.image_config"
_PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG"}
# Token counts Google bills: per input image, and per output image by model and size.
_INPUT_IMAGE_TOKENS = 258
_OUTPUT_TOKENS = {"flash": 1290, "1K": 1120, "2K": 1120, "4K": 2000}


@dataclass
class RecordedRequest:
    path: str
    query: dict[str, str]
    headers: CIMultiDict[str]
    json: dict[str, Any] | None = None

    @property
    def model(self) -> str:
        return self.path.rsplit("/", 1)[-1].split(":", 1)[0]

    @property
    def parts(self) -> list[dict[str, Any]]:
        assert self.json is not None
        parts: list[dict[str, Any]] = self.json["contents"][-1]["parts"]
        return parts

    @property
    def prompt(self) -> str:
        return "\n".join(part["text"] for part in self.parts if "text" in part)

    @property
    def images(self) -> list[tuple[str, bytes]]:
        """``(mimeType, bytes)`` of each inlineData part, in order."""
        return [
            (part["inlineData"]["mimeType"], base64.b64decode(part["inlineData"]["data"]))
            for part in self.parts
            if "inlineData" in part
        ]

    @property
    def image_config(self) -> dict[str, Any] | None:
        assert self.json is not None
        config: dict[str, Any] | None = self.json.get("generationConfig", {}).get("imageConfig")
        return config


def google_error(status: int, code: str, message: str, details: list[Any] | None = None) -> web.Response:
    error: dict[str, Any] = {"code": status, "message": message, "status": code}
    if details is not None:
        error["details"] = details
    return web.json_response({"error": error}, status=status)


def render(width: int, height: int, fmt: str = "png", shade: int = 0) -> bytes:
    image = Image.new("RGB", (width, height), (40 + shade * 30 % 200, 150, 90))
    ImageDraw.Draw(image).ellipse((width // 4, height // 4, width * 3 // 4, height * 3 // 4), fill="yellow")
    out = io.BytesIO()
    image.save(out, _PIL_FORMATS[fmt], **({"compress_level": 1} if fmt == "png" else {"quality": 85}))
    return out.getvalue()


class FakeGeminiUpstream(LoopbackServer):
    def __init__(self, api_key: str = "AIzaFakeGeminiKey-0123456789abcdef") -> None:
        super().__init__()
        self.api_key = api_key
        self.requests: list[RecordedRequest] = []
        #: Stop with this finishReason and no image (IMAGE_SAFETY, NO_IMAGE...); None draws.
        self.finish_reason: str | None = None
        #: Refuse the prompt with promptFeedback.blockReason (no candidates at all).
        self.block_reason: str | None = None
        #: Answer with a text part only (finishReason STOP): the model chatted instead of drawing.
        self.text_only = False
        #: A text part sent beside the image, or alone with finish_reason / text_only.
        self.model_text: str | None = None
        #: Answer every request with this status and a Google error envelope.
        self.fail_status: int | None = None
        self.fail_message = "fake failure"
        #: Report this ``usageMetadata`` instead of plausible counts (malformed-usage tests).
        self.usage_metadata: Any = None
        #: With fail_status: answer this body instead of Google's envelope around fail_message.
        self.fail_body: dict[str, Any] | None = None
        #: The error envelope's ``status`` (default: Google's name for fail_status).
        self.fail_google_status: str | None = None
        #: Sent with a 429 as a google.rpc.RetryInfo detail, e.g. "37s".
        self.retry_delay: str | None = None
        #: Sleep this long before answering (timeouts).
        self.delay_s = 0.0
        #: Hold every request until this event is set (async tests: concurrency without sleeps).
        self.gate: asyncio.Event | None = None
        #: Answer 200 with a body that is not JSON.
        self.malformed = False
        #: The format of the images made ("png", as Gemini 2.5 Flash; or "jpeg").
        self.image_format = "png"
        #: Put an interim "thought" image before the final one (Gemini 3 Pro reasoning).
        self.thought_image = False
        #: Requests in flight now and the most seen at once (n>1 concurrency).
        self.in_flight = 0
        self.max_in_flight = 0
        self._arrivals = asyncio.Condition()

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1beta"

    def echo_key_in_errors(self, status: int) -> None:
        """Answer every request with ``status`` and an error quoting the key everywhere."""
        self.fail_status = status
        self.fail_body = leaky_google_error(status, self.api_key)

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1beta/models/{target}", self._post)

    async def wait_in_flight(self, count: int) -> None:
        """Return once ``count`` requests are being answered at the same time (same loop only)."""
        async with self._arrivals:
            await self._arrivals.wait_for(lambda: self.in_flight >= count)

    # -- serving ------------------------------------------------------------------------------

    async def _post(self, request: web.Request) -> web.Response:
        recorded = RecordedRequest(request.path, dict(request.query), CIMultiDict(request.headers))
        self.requests.append(recorded)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        async with self._arrivals:
            self._arrivals.notify_all()
        try:
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            if self.gate is not None:
                await self.gate.wait()
            return await self._answer(request, recorded)
        finally:
            self.in_flight -= 1

    async def _answer(self, request: web.Request, recorded: RecordedRequest) -> web.Response:
        model, _, method = request.match_info["target"].partition(":")
        given = request.headers.get("x-goog-api-key") or request.query.get("key")
        if not given:
            return google_error(
                403,
                "PERMISSION_DENIED",
                "Method doesn't allow unregistered callers (callers without established identity). "
                "Please use API Key or other form of API consumer identity to call this API.",
            )
        if given != self.api_key:
            reason = {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}
            message = "API key not valid. Please pass a valid API key."
            return google_error(400, "INVALID_ARGUMENT", message, [{**reason, "domain": "googleapis.com"}])
        if method != "generateContent" or model not in MODELS:
            return google_error(
                404,
                "NOT_FOUND",
                f"models/{model} is not found for API version v1beta, or is not supported for "
                f"{method}. Call ListModels to see the list of available models and their supported methods.",
            )
        if self.fail_status is not None:
            return self._failure()
        try:
            recorded.json = await request.json()
        except ValueError:
            return google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        body = recorded.json if isinstance(recorded.json, dict) else {}
        problem = _check(body, model)
        if problem is not None:
            return google_error(400, "INVALID_ARGUMENT", problem)
        if self.malformed:
            return web.Response(text='{"candidates": [', content_type="application/json")
        return web.json_response(self._content(body, model))

    def _failure(self) -> web.Response:
        assert self.fail_status is not None
        if self.fail_body is not None:
            return web.json_response(self.fail_body, status=self.fail_status)
        names = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND"}
        names |= {429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
        details = None
        if self.fail_status == 429 and self.retry_delay:
            details = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": self.retry_delay}]
        status = self.fail_google_status or names.get(self.fail_status, "UNKNOWN")
        return google_error(self.fail_status, status, self.fail_message, details)

    def _content(self, body: dict[str, Any], model: str) -> dict[str, Any]:
        parts = body["contents"][-1]["parts"]
        prompt = " ".join(part.get("text", "") for part in parts)
        inputs = [part["inlineData"] for part in parts if "inlineData" in part]
        text_tokens, image_tokens = len(prompt.split()), _INPUT_IMAGE_TOKENS * len(inputs)
        prompt_details = [{"modality": "TEXT", "tokenCount": text_tokens}]
        if inputs:
            prompt_details.append({"modality": "IMAGE", "tokenCount": image_tokens})
        usage: dict[str, Any] = {
            "promptTokenCount": text_tokens + image_tokens,
            "totalTokenCount": text_tokens + image_tokens,
            "promptTokensDetails": prompt_details,
        }
        answer: dict[str, Any] = {
            "usageMetadata": usage,
            "modelVersion": model,
            "responseId": uuid.uuid4().hex,
        }
        if self.block_reason is not None:
            answer["promptFeedback"] = {"blockReason": self.block_reason}
            return answer
        text = [{"text": self.model_text}] if self.model_text else []
        if self.finish_reason is not None or self.text_only:
            candidate: dict[str, Any] = {"finishReason": self.finish_reason or "STOP", "index": 0}
            if text:
                candidate["content"] = {"role": "model", "parts": text}
            answer["candidates"] = [candidate]
            return answer
        tier = (
            "flash"
            if "flash" in model
            else body["generationConfig"].get("imageConfig", {}).get("imageSize", "1K")
        )
        width, height = PIXELS[tier][self._ratio(body, inputs)]
        image = render(width, height, self.image_format, shade=len(self.requests))
        inline = {"mimeType": f"image/{self.image_format}", "data": base64.b64encode(image).decode()}
        out_parts: list[dict[str, Any]] = [*text, {"inlineData": inline}]
        if self.thought_image:
            thought = {"mimeType": "image/png", "data": base64.b64encode(render(64, 64)).decode()}
            out_parts.insert(0, {"inlineData": thought, "thought": True})
        output = _OUTPUT_TOKENS[tier]
        usage["candidatesTokenCount"] = output
        usage["totalTokenCount"] += output
        usage["candidatesTokensDetails"] = [{"modality": "IMAGE", "tokenCount": output}]
        content = {"role": "model", "parts": out_parts}
        answer["candidates"] = [{"content": content, "finishReason": "STOP", "index": 0}]
        if self.usage_metadata is not None:
            answer["usageMetadata"] = self.usage_metadata
        return answer

    @staticmethod
    def _ratio(body: dict[str, Any], inputs: list[dict[str, Any]]) -> str:
        asked = body["generationConfig"].get("imageConfig", {}).get("aspectRatio")
        if asked:
            return str(asked)
        if inputs:  # an edit keeps its first image's shape
            with Image.open(io.BytesIO(base64.b64decode(inputs[0]["data"]))) as first:
                return nearest_aspect_ratio(*first.size)
        return "1:1"


def _check(body: dict[str, Any], model: str) -> str | None:
    """Google's validation, as far as these tests need it; the error message, or None."""
    unknown = set(body) - _TOP_LEVEL
    if unknown:
        return f'Invalid JSON payload received. Unknown name "{sorted(unknown)[0]}": Cannot find field.'
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents or not contents[-1].get("parts"):
        return "* GenerateContentRequest.contents: contents is not specified"
    for part in contents[-1]["parts"]:
        if "inlineData" in part:
            inline = part["inlineData"]
            try:
                Image.open(io.BytesIO(base64.b64decode(inline["data"], validate=True))).verify()
            except (KeyError, binascii.Error, OSError, SyntaxError):
                return "Unable to process input image. Please retry or report in https://developers.generativeai.google/guide/troubleshooting"
            if inline.get("mimeType") not in ("image/png", "image/jpeg", "image/webp"):
                return f"Unsupported MIME type: {inline.get('mimeType')}"
        elif not isinstance(part.get("text"), str):
            return "* GenerateContentRequest.contents[0].parts[0].data: required oneof field 'data'"
    generation = body.get("generationConfig") or {}
    unknown = set(generation) - _GENERATION
    if unknown:
        name = sorted(unknown)[0]
        return f"Invalid JSON payload received. Unknown name \"{name}\" at 'generation_config'."
    if "IMAGE" not in (generation.get("responseModalities") or []):
        return "Model only supports IMAGE output when responseModalities includes IMAGE."
    config = generation.get("imageConfig") or {}
    if config.get("aspectRatio") is not None and config["aspectRatio"] not in _RATIOS:
        return f"{_IMAGE_CONFIG}.aspect_ratio: unsupported aspect ratio {config['aspectRatio']}"
    if "imageSize" in config and ("flash" in model or config["imageSize"] not in ("1K", "2K", "4K")):
        return f"{_IMAGE_CONFIG}.image_size: {config['imageSize']} is not supported by {model}"
    return None
