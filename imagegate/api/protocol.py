"""Wire shapes of the image endpoints, both ways: client bodies in, response bodies and events out.

Parsing: field names and limits are OpenAI's (``CreateImageRequest``, ``CreateImageEditRequest``,
``EditImageBodyJsonParam``); every failure becomes a 400 naming the offending ``param``.
Rendering: ``ImagesResponse`` and the stream events (``ImageGenPartialImageEvent``,
``ImageGenCompletedEvent`` and the edit twins) from the pipeline's domain events, with one echo
rule for ``background``, ``quality``, ``output_format`` and ``size``; ``sse_error`` for a stream
that fails after it started.
"""

from __future__ import annotations

import time
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from imagegate.domain import DeliveredImage, Generated, ImageRequest, ImageSource, Operation, PartialImage
from imagegate.errors import GatewayError, InvalidRequest


class ImageFields(BaseModel):
    """Fields shared by generations and edits. Unknown fields are kept for same-protocol upstreams."""

    model_config = ConfigDict(extra="allow")

    prompt: str = Field(min_length=1, max_length=32000)
    model: str = Field(min_length=1)
    n: int | None = Field(default=None, ge=1, le=10)
    size: str | None = None
    quality: Literal["low", "medium", "high", "auto", "standard", "hd"] | None = None
    background: Literal["transparent", "opaque", "auto"] | None = None
    output_format: Literal["png", "jpeg", "webp"] | None = None
    output_compression: int | None = Field(default=None, ge=0, le=100)
    moderation: Literal["auto", "low"] | None = None
    response_format: Literal["url", "b64_json"] | None = None
    stream: bool | None = None
    partial_images: int | None = Field(default=None, ge=0, le=3)
    user: str | None = None


class EditFields(ImageFields):
    input_fidelity: Literal["high", "low"] | None = None


class ImageRef(BaseModel):
    """``{"image_url": ...}`` or ``{"file_id": ...}`` in a JSON edit."""

    model_config = ConfigDict(extra="forbid")

    image_url: str | None = Field(default=None, min_length=1)
    file_id: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _exactly_one(self) -> ImageRef:
        if (self.image_url is None) == (self.file_id is None):
            raise ValueError("give exactly one of image_url or file_id")
        return self


class JsonEditBody(EditFields):
    images: list[ImageRef] = Field(min_length=1)
    mask: ImageRef | None = None


def _param_of(loc: tuple[int | str, ...]) -> str:
    param = ""
    for part in loc:
        param += f"[{part}]" if isinstance(part, int) else (f".{part}" if param else str(part))
    return param


def validation_error(exc: ValidationError, *, rename: dict[str, str] | None = None) -> InvalidRequest:
    """The first problem pydantic found, as OpenAI would word it."""
    error = exc.errors()[0]
    param = _param_of(tuple(error["loc"]))
    param = (rename or {}).get(param, param)
    if error["type"] == "missing":
        return InvalidRequest(
            f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter"
        )
    message = str(error["msg"]).removeprefix("Value error, ")
    return InvalidRequest(f"Invalid value for '{param}': {message}.", param=param)


def parse_json_object(body: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(
            f"The request body is not valid JSON: {exc.msg} (at line {exc.lineno}, column {exc.colno}).",
            code="invalid_json",
        ) from exc
    if not isinstance(data, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
    return data


def _to_request(
    fields: ImageFields, operation: Operation, default_response_format: Literal["url", "b64_json"]
) -> ImageRequest:
    extra = dict(fields.model_extra or {})
    return ImageRequest(
        operation=operation,
        model=fields.model,
        prompt=fields.prompt,
        n=fields.n or 1,
        size=fields.size or "auto",
        quality=fields.quality,
        background=fields.background,
        output_format=fields.output_format,
        output_compression=fields.output_compression,
        moderation=fields.moderation,
        response_format=fields.response_format or default_response_format,
        stream=bool(fields.stream),
        partial_images=fields.partial_images or 0,
        input_fidelity=fields.input_fidelity if isinstance(fields, EditFields) else None,
        user=fields.user,
        extra=extra,
    )


def parse_generation(body: bytes, default_response_format: Literal["url", "b64_json"]) -> ImageRequest:
    data = parse_json_object(body)
    try:
        fields = ImageFields.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None
    return _to_request(fields, "generate", default_response_format)


def parse_json_edit(body: bytes, default_response_format: Literal["url", "b64_json"]) -> ImageRequest:
    data = parse_json_object(body)
    if isinstance(data.get("images"), list) and len(data["images"]) > 16:
        raise InvalidRequest(
            f"Too many images: {len(data['images'])} given, at most 16 are accepted.", param="images"
        )
    try:
        fields = JsonEditBody.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None
    request = _to_request(fields, "edit", default_response_format)
    request.extra.pop("images", None)
    request.sources = [_ref_source(ref, f"images[{index}]") for index, ref in enumerate(fields.images)]
    request.mask_source = _ref_source(fields.mask, "mask") if fields.mask is not None else None
    return request


def _ref_source(ref: ImageRef, param: str) -> ImageSource:
    if ref.file_id is not None:
        # File ids belong to one upstream account's Files API; a gateway that may route the
        # request to any channel cannot resolve them.
        raise InvalidRequest(
            "file_id references are not supported by this gateway; send the image as image_url "
            "(an https URL or a data:image/...;base64 URL).",
            param=f"{param}.file_id",
            code="unsupported_parameter",
        )
    return ImageSource(param=f"{param}.image_url", url=ref.image_url)


def parse_multipart_edit(
    fields: dict[str, str],
    images: list[ImageSource],
    mask: ImageSource | None,
    default_response_format: Literal["url", "b64_json"],
) -> ImageRequest:
    # The SDK sends "" for options left unset: absent, not invalid.
    present = {name: value for name, value in fields.items() if value != ""}
    try:
        parsed = EditFields.model_validate(present)
    except ValidationError as exc:
        raise validation_error(exc) from None
    request = _to_request(parsed, "edit", default_response_format)
    request.sources, request.mask_source = images, mask
    return request


# -- rendering: domain results as OpenAI's wire shapes -------------------------------------------
# One echo rule for every renderer: what was made (Generated's fields) when known. A JSON body
# leaves an unknown field out; a stream event, whose schema requires it, says "auto".


def _echo(size: str | None, quality: str | None, background: str | None, fmt: str) -> dict[str, Any]:
    return {"background": background, "output_format": fmt, "quality": quality, "size": size}


def images_response(generated: Generated) -> dict[str, Any]:
    """The ``ImagesResponse`` body of a finished request (sync JSON, and a task's result)."""
    body: dict[str, Any] = {
        "created": generated.created,
        "data": [_image_item(image) for image in generated.images],
    }
    body.update(_echo(generated.size, generated.quality, generated.background, generated.output_format))
    if generated.usage is not None:
        body["usage"] = generated.usage.to_wire()
    return {key: value for key, value in body.items() if value is not None}


def _image_item(image: DeliveredImage, *, with_b64: bool = False) -> dict[str, Any]:
    item: dict[str, Any] = {}
    if image.url is not None:
        item["url"] = image.url
    if image.blob is not None and (image.url is None or with_b64):
        item["b64_json"] = image.blob.b64_payload()
    if image.revised_prompt is not None:
        item["revised_prompt"] = image.revised_prompt
    if image.seed is not None:
        item["seed"] = image.seed
    return item


def stream_prefix(request: ImageRequest) -> str:
    return "image_edit" if request.operation == "edit" else "image_generation"


def partial_image_event(request: ImageRequest, partial: PartialImage) -> tuple[str, dict[str, Any]]:
    """``image_generation.partial_image`` (or ``image_edit.…``): a preview, echoing what was asked."""
    kind = f"{stream_prefix(request)}.partial_image"
    payload: dict[str, Any] = {
        "type": kind,
        "b64_json": partial.image.b64_payload(),
        "partial_image_index": partial.index,
        "created_at": int(time.time()),
    }
    payload.update(
        _stream_echo(
            partial.size or request.size,
            request.quality,
            request.background,
            partial.image.format or request.output_format or "png",
        )
    )
    return kind, payload


def completed_events(request: ImageRequest, generated: Generated) -> list[tuple[str, dict[str, Any]]]:
    """One ``….completed`` event per image: always its base64, and its URL when it is hosted."""
    kind = f"{stream_prefix(request)}.completed"
    events = []
    for image in generated.images:
        payload: dict[str, Any] = {"type": kind, "created_at": generated.created}
        payload.update(
            _stream_echo(generated.size, generated.quality, generated.background, generated.output_format)
        )
        payload.update(_image_item(image, with_b64=True))
        if generated.usage is not None:
            payload["usage"] = generated.usage.to_wire()
        events.append((kind, payload))
    return events


def _stream_echo(size: str | None, quality: str | None, background: str | None, fmt: str) -> dict[str, Any]:
    return _echo(
        size or "auto",
        quality if quality in ("low", "medium", "high") else "auto",
        background if background in ("transparent", "opaque") else "auto",
        fmt,
    )


def sse_error(error: GatewayError) -> dict[str, Any]:
    """The data of the ``error`` event that ends a stream that had already started (any stream)."""
    return {"type": "error", **error.to_body()}
