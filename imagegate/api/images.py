"""/v1/images/generations and /v1/images/edits: parse, hand to the image service, render."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response

from imagegate import jsonsplice
from imagegate.api.deps import gateway, principal
from imagegate.api.protocol import parse_generation, parse_json_edit, parse_multipart_edit
from imagegate.api.streaming import stream_response
from imagegate.domain import ImageRequest, ImageSource, Principal
from imagegate.errors import InvalidRequest
from imagegate.observability import note

router = APIRouter()

_MAX_FORM_FILES = 17  # 16 images and a mask


@router.post("/v1/images/generations")
async def create_image(request: Request) -> Response:
    who = await principal(request)
    gw = gateway(request)
    image_request = parse_generation(await request.body(), gw.settings.response_format)
    note(model=image_request.model)
    return await _respond(request, image_request, who)


@router.post("/v1/images/edits")
async def edit_image(request: Request) -> Response:
    who = await principal(request)
    gw = gateway(request)
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        fields, images, mask = await _read_multipart(request)
        image_request, sources, mask_source = parse_multipart_edit(
            fields, images, mask, gw.settings.response_format
        )
    elif content_type.startswith("application/json"):
        image_request, sources, mask_source = parse_json_edit(
            await request.body(), gw.settings.response_format
        )
    else:
        raise InvalidRequest(
            "Send edits as multipart/form-data (files in 'image', 'image[]' or 'image[N]') "
            "or as application/json with an 'images' array.",
            code="invalid_content_type",
        )
    note(model=image_request.model)
    # Cheap checks first: a wrong model or size should not cost fetching 16 remote images.
    gw.images.prepare(image_request, who)
    image_request.images, image_request.mask = await gw.inputs.load_edit_inputs(sources, mask_source)
    return await _respond(request, image_request, who)


async def _respond(request: Request, image_request: ImageRequest, who: Principal) -> Response:
    gw = gateway(request)
    if image_request.stream:
        return stream_response(gw.images, image_request, who, gw.settings.stream_keepalive_s)
    body = await gw.images.create(image_request, who)
    return Response(jsonsplice.dumps(body), media_type="application/json")


async def _read_multipart(request: Request) -> tuple[dict[str, str], list[ImageSource], ImageSource | None]:
    try:
        form = await request.form(max_files=_MAX_FORM_FILES + 1, max_fields=1000)
    except InvalidRequest:
        raise
    except Exception as exc:
        # Starlette reports malformed bodies and exceeded part limits as HTTPException/ValueError.
        detail = getattr(exc, "detail", None) or str(exc) or "could not be parsed"
        raise InvalidRequest(f"Malformed multipart body: {detail}.", code="invalid_multipart") from exc
    fields: dict[str, str] = {}
    images: list[tuple[int, ImageSource]] = []
    mask: ImageSource | None = None
    for order, (name, value) in enumerate(form.multi_items()):
        if name == "mask" or _is_image_field(name):
            if isinstance(value, str):
                if value == "":
                    continue  # the SDK's "unset"
                raise InvalidRequest(f"'{name}' must be a file upload.", param=name)
            source = ImageSource(param=name, data=await _read_upload(value))
            if name == "mask":
                mask = source
            else:
                images.append((_image_position(name, order), source))
        elif isinstance(value, str):
            fields[name] = value
    await form.close()
    images.sort(key=lambda item: item[0])
    return fields, [source for _, source in images], mask


async def _read_upload(upload: UploadFile) -> bytes:
    data = await upload.read()
    await upload.close()
    return data


def _is_image_field(name: str) -> bool:
    return name == "image" or (name.startswith("image[") and name.endswith("]"))


def _image_position(name: str, order: int) -> int:
    """``image[3]`` sorts by its index; ``image`` and ``image[]`` by arrival order."""
    inner = name[6:-1] if name.startswith("image[") else ""
    return int(inner) * 10_000 if inner.isdigit() else 10_000 * 100 + order
