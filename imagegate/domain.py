"""What services pass around: requests, images, results and events. No wire or DB concerns."""

from __future__ import annotations

import base64
import binascii
import random
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

ImageFormat = Literal["png", "jpeg", "webp"]
Operation = Literal["generate", "edit"]
ResponseFormat = Literal["url", "b64_json"]

_SIGNATURES: tuple[tuple[bytes, int, ImageFormat], ...] = (
    (b"\x89PNG\r\n\x1a\n", 0, "png"),
    (b"\xff\xd8\xff", 0, "jpeg"),
    (b"WEBP", 8, "webp"),
)


def sniff_format(head: bytes) -> ImageFormat | None:
    """The image format from its first bytes (never from a name or a content type)."""
    for magic, offset, name in _SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            if name == "webp" and head[:4] != b"RIFF":
                continue
            return name
    return None


#: Base64 text as str, or as bytes / a view of the upstream's response body (never copied).
Base64Text = str | bytes | memoryview


class ImageBlob:
    """Image bytes that may arrive base64-encoded.

    A b64_json passthrough of a multi-megabyte image should never decode and re-encode it,
    so the blob keeps whichever form it was given and converts only on demand. Base64 may be
    held as a view into the upstream's response body: it then reaches the client without
    ever being copied into a str (see :mod:`imagegate.jsonsplice`).
    """

    __slots__ = ("_b64", "_raw")

    def __init__(self, raw: bytes | None = None, b64: Base64Text | None = None) -> None:
        if raw is None and b64 is None:
            raise ValueError("ImageBlob needs raw bytes or base64 text")
        self._raw = raw
        self._b64 = b64

    @classmethod
    def from_b64(cls, text: Base64Text) -> ImageBlob:
        return cls(b64=text)

    def raw(self) -> bytes:
        if self._raw is None:
            assert self._b64 is not None
            try:
                self._raw = base64.b64decode(self._b64, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise ValueError("invalid base64 image data") from exc
        return self._raw

    def b64(self) -> str:
        """The base64 text as a str."""
        payload = self.b64_payload()
        return payload if isinstance(payload, str) else str(payload, "ascii")

    def b64_payload(self) -> Base64Text:
        """The base64 text in whatever form it is held, for splicing into a JSON body."""
        if self._b64 is None:
            assert self._raw is not None
            self._b64 = base64.b64encode(self._raw).decode("ascii")
        return self._b64

    def head(self, size: int = 48) -> bytes:
        """The first ``size`` bytes, decoding only as much base64 as that needs."""
        if self._raw is not None:
            return self._raw[:size]
        assert self._b64 is not None
        chars = (size + 2) // 3 * 4
        try:
            return base64.b64decode(self._b64[:chars])[:size]
        except (binascii.Error, ValueError):
            return b""

    def __len__(self) -> int:
        """Roughly the bytes held (base64 text counts as it is): a measure of the work it costs."""
        held = self._raw if self._raw is not None else self._b64
        assert held is not None
        return len(held)

    def tail(self, size: int) -> bytes:
        """The last ``size`` bytes (or fewer), decoding only the end of the base64 text."""
        if self._raw is not None:
            return self._raw[-size:]
        assert self._b64 is not None
        chars = (size + 2) // 3 * 4 + 8
        piece = self._b64[-chars:]
        piece = bytes(piece) if isinstance(piece, memoryview) else piece
        piece = piece.rstrip()
        # Valid base64 is whole 4-character groups, so a suffix of a multiple of 4 is aligned.
        piece = piece[len(piece) % 4 :]
        try:
            return base64.b64decode(piece)[-size:]
        except (binascii.Error, ValueError):
            return b""

    @property
    def format(self) -> ImageFormat | None:
        return sniff_format(self.head())


@dataclass(slots=True)
class InputImage:
    """A validated client-supplied image (an edit input or a mask)."""

    data: bytes
    format: ImageFormat
    width: int
    height: int
    has_alpha: bool = False


@dataclass(slots=True)
class ImageRequest:
    """One image job, whichever endpoint or wire format it came from."""

    operation: Operation
    model: str
    prompt: str
    n: int = 1
    size: str = "auto"
    quality: str | None = None
    background: str | None = None
    output_format: ImageFormat | None = None
    output_compression: int | None = None
    moderation: str | None = None
    response_format: Literal["url", "b64_json"] = "url"
    stream: bool = False
    partial_images: int = 0
    input_fidelity: str | None = None
    user: str | None = None
    #: The client's images before validation; the pipeline turns them into ``images``/``mask``
    #: only after access and quota are checked, so a refused request costs no decoding.
    sources: list[ImageSource] = field(default_factory=list)
    mask_source: ImageSource | None = None
    images: list[InputImage] = field(default_factory=list)
    mask: InputImage | None = None
    #: The chat-image model the client named, when this request runs on its behalf: access is
    #: checked, and the request logged, under that name.
    via_model: str | None = None
    # Unknown fields from the client, forwarded only to upstreams that speak the same protocol.
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def public_model(self) -> str:
        """The model the client asked for (a chat-image model, or the image model itself)."""
        return self.via_model or self.model


@dataclass(slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    text_tokens: int = 0
    image_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def to_wire(self) -> dict[str, Any]:
        return {
            "input_tokens": self.input_tokens,
            "input_tokens_details": {
                "text_tokens": self.text_tokens,
                "image_tokens": self.image_tokens,
            },
            "output_tokens": self.output_tokens,
            "total_tokens": self.total_tokens,
        }

    @classmethod
    def combined(cls, usages: list[Usage]) -> Usage:
        """The usage of several upstream calls made for one request (n images as n calls)."""
        return cls(
            input_tokens=sum(u.input_tokens for u in usages),
            output_tokens=sum(u.output_tokens for u in usages),
            text_tokens=sum(u.text_tokens for u in usages),
            image_tokens=sum(u.image_tokens for u in usages),
        )

    @classmethod
    def from_wire(cls, data: Any) -> Usage | None:
        """OpenAI's ``usage`` object, checked: ValueError names the first impossible field."""
        if data is None:
            return None
        if not isinstance(data, dict):
            raise ValueError("usage is not an object")
        details = data.get("input_tokens_details")
        if details is None:
            details = {}
        if not isinstance(details, dict):
            raise ValueError("usage.input_tokens_details is not an object")
        return cls(
            input_tokens=token_count(data.get("input_tokens"), "input_tokens"),
            output_tokens=token_count(data.get("output_tokens"), "output_tokens"),
            text_tokens=token_count(details.get("text_tokens"), "input_tokens_details.text_tokens"),
            image_tokens=token_count(details.get("image_tokens"), "input_tokens_details.image_tokens"),
        )


#: No single upstream call reports this many tokens; a count at or above it is a broken answer
#: (and would overflow the request log's columns and the ledger's arithmetic).
MAX_TOKENS = 10**9


def token_count(value: Any, field: str) -> int:
    """A token count as an upstream reported it: absent is 0, else a whole number in [0, MAX_TOKENS)."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"usage.{field} is not a number")
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(f"usage.{field} is not a whole number")
    if not 0 <= value < MAX_TOKENS:
        raise ValueError(f"usage.{field} is out of range")
    return int(value)


@dataclass(slots=True)
class GeneratedImage:
    """One image from a provider: bytes (maybe still base64) or a URL to fetch them from."""

    blob: ImageBlob | None = None
    url: str | None = None
    revised_prompt: str | None = None
    #: The seed a local model used, reported so a client can reproduce the image.
    seed: int | None = None


@dataclass(slots=True)
class PartialImage:
    """A coarser preview of an image still being made (streaming)."""

    index: int
    image: ImageBlob
    size: str | None = None


@dataclass(slots=True)
class ImageResult:
    """The final event of a provider call; the fields echo what the upstream reported."""

    images: list[GeneratedImage]
    usage: Usage | None = None
    size: str | None = None
    quality: str | None = None
    background: str | None = None
    output_format: ImageFormat | None = None
    created: int | None = None


ProviderEvent = PartialImage | ImageResult


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: an API key (or the admin key) and what it may use."""

    key_id: str
    name: str
    models: tuple[str, ...] | None = None  # None: every model (the key's and its group's lists, combined)
    is_admin: bool = False
    group: str | None = None
    #: The group's price multiplier: every cost this principal is charged is multiplied by it.
    price_multiplier: Decimal = Decimal(1)
    #: Requests per minute (the key's own, else its group's); None: no limit.
    rpm: int | None = None
    #: Whether requests hold and charge quota; False for unlimited keys and the admin key.
    billed: bool = False
    #: The response format of requests that do not say (the key's, else its group's); None: config's.
    response_format: ResponseFormat | None = None

    def may_use(self, model: str) -> bool:
        return self.models is None or model in self.models


@dataclass(slots=True)
class ImageSource:
    """A client image before validation: uploaded bytes, or a URL (http(s) or data:) to read."""

    param: str
    data: bytes | None = None
    url: str | None = None


# -- what the generation pipeline yields ---------------------------------------------------------


@dataclass(slots=True)
class Accepted:
    """The request passed every check, its cost is held and its inputs are loaded: it will run.

    Renderers that must choose between an HTTP error and a started stream wait for this event.
    """

    model: str


@dataclass(slots=True)
class DeliveredImage:
    """One finished image: validated, in the format asked for, and hosted when a URL is needed.

    ``blob`` is None once the image is hosted and nobody needs its bytes any more (a JSON answer
    of URLs): multi-megabyte images are then not held while the response is written.
    """

    blob: ImageBlob | None
    url: str | None = None
    revised_prompt: str | None = None
    seed: int | None = None


@dataclass(slots=True)
class Generated:
    """The pipeline's last event: every image validated, delivered and paid for.

    ``size``, ``quality`` and ``background`` are what was made, as far as it is known (the
    upstream's word, else the measured image, else the concrete value asked for); None when unknown.
    """

    images: list[DeliveredImage]
    created: int
    output_format: ImageFormat
    size: str | None = None
    quality: str | None = None
    background: str | None = None
    usage: Usage | None = None
    cost_micros: int = 0


GenerationEvent = Accepted | PartialImage | Generated


def new_request_id() -> str:
    """``req_``, the time in milliseconds (12 hex digits), then 64 random bits (16).

    Time first, so ids sort by when their requests started and the request log's primary key
    grows at its right edge: with random ids each batch of rows dirtied a random page of that
    index per row, and the insert cost grew with the table (14 to 34 µs a row of CPU on SQLite
    over the first 50,000 rows, against a flat 9 with these). Unique, not secret: 64 random
    bits a millisecond from Python's generator (reseeded in every forked worker), which unlike
    os.urandom does not hand the GIL to the database threads on every request.
    """
    return f"req_{time.time_ns() // 1_000_000:012x}{random.getrandbits(64):016x}"


# -- chat-image calls ------------------------------------------------------------------------------


@dataclass(slots=True)
class ChatTurn:
    """One message of a conversation, as a chat-image model reads it."""

    role: str
    text: str
    #: ``(part index, url)`` of each ``image_url`` part, in order.
    images: list[tuple[int, str]] = field(default_factory=list)


@dataclass(slots=True)
class ChatCall:
    """A /v1/chat/completions call to a chat-image model, whatever wire format it came in."""

    model: str
    turns: list[ChatTurn]
    metadata: dict[str, Any] = field(default_factory=dict)
    n: int | None = None
    user: str | None = None
    stream: bool = False
