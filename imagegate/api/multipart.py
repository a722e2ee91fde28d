"""Reading an edit's multipart body: text fields, ``image`` / ``image[]`` / ``image[N]`` files, a mask."""

from __future__ import annotations

from starlette.datastructures import UploadFile
from starlette.requests import ClientDisconnect, Request
from starlette.types import Message

from imagegate.domain import ImageSource
from imagegate.errors import GatewayError, InvalidRequest

_MAX_FORM_FILES = 17  # 16 images and a mask
_TAIL_BYTES = 256


class _TailRecorder:
    """Passes the body through while keeping its last bytes, to see whether it was cut short."""

    def __init__(self, request: Request) -> None:
        self._receive = request.receive
        self.tail = b""

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request":
            self.tail = (self.tail + message.get("body", b""))[-_TAIL_BYTES:]
        return message


async def read_multipart(request: Request) -> tuple[dict[str, str], list[ImageSource], ImageSource | None]:
    recorder = _TailRecorder(request)
    streamed = Request(request.scope, recorder.receive)
    try:
        form = await streamed.form(max_files=_MAX_FORM_FILES + 1, max_fields=1000)
    except (GatewayError, ClientDisconnect):
        # The body-size limit (413) raised from inside the parser's reads, or a client that hung
        # up mid-upload (499, answered where every request body's reads are): not a malformed body.
        raise
    except Exception as exc:
        # Starlette reports malformed bodies and exceeded part limits as HTTPException/ValueError.
        detail = str(getattr(exc, "detail", None) or exc or "could not be parsed").rstrip(".")
        raise InvalidRequest(f"Malformed multipart body: {detail}.", code="invalid_multipart") from exc
    try:
        _check_complete(request, recorder.tail)
        return await _collect(form.multi_items())
    finally:
        await form.close()


def _check_complete(request: Request, tail: bytes) -> None:
    # The parser accepts a body that stops before its closing boundary, silently dropping the
    # part it was in; a client whose upload was cut off deserves to be told so.
    boundary = request.headers.get("content-type", "").partition("boundary=")[2].split(";")[0].strip('"')
    if boundary and not tail.rstrip(b"\r\n").endswith(b"--" + boundary.encode() + b"--"):
        raise InvalidRequest(
            "Malformed multipart body: it ends before the closing boundary (was the upload cut off?).",
            code="invalid_multipart",
        )


async def _collect(
    items: list[tuple[str, UploadFile | str]],
) -> tuple[dict[str, str], list[ImageSource], ImageSource | None]:
    fields: dict[str, str] = {}
    images: list[tuple[int, ImageSource]] = []
    mask: ImageSource | None = None
    for order, (name, value) in enumerate(items):
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
