"""stream=true on /v1/images/*: OpenAI's partial/completed events over SSE (SPEC §5)."""

from __future__ import annotations

import base64

import requests
from openai import OpenAI
from openai.types import (
    ImageEditCompletedEvent,
    ImageEditPartialImageEvent,
    ImageGenCompletedEvent,
    ImageGenPartialImageEvent,
)

from tests.conftest import ADMIN_KEY, LiveGateway, image_bytes, open_image


def decode(b64: str) -> tuple[str | None, tuple[int, int]]:
    image = open_image(base64.b64decode(b64))
    return image.format, image.size


def test_generation_stream_yields_partials_then_completed(client: OpenAI, gateway: LiveGateway) -> None:
    events = list(
        client.images.generate(
            model="demo",
            prompt="a nebula",
            size="1024x1024",
            stream=True,
            partial_images=2,
            output_format="webp",
        )
    )

    partials = [e for e in events if isinstance(e, ImageGenPartialImageEvent)]
    completed = [e for e in events if isinstance(e, ImageGenCompletedEvent)]
    assert [p.partial_image_index for p in partials] == [0, 1]
    assert len(completed) == 1 and events[-1] is completed[0]
    for partial in partials:
        assert decode(partial.b64_json) == ("WEBP", (1024, 1024))
    assert decode(completed[0].b64_json) == ("WEBP", (1024, 1024))
    assert completed[0].usage is not None and completed[0].usage.total_tokens > 0
    # The completed event also carries the hosted URL (response_format url is the default).
    url = completed[0].model_extra["url"]  # type: ignore[index]
    assert url.startswith(gateway.url) and open_image(requests.get(url, timeout=10).content).size == (
        1024,
        1024,
    )


def test_edit_stream_yields_edit_events(client: OpenAI) -> None:
    events = list(
        client.images.edit(
            model="demo",
            image=image_bytes((1024, 1024)),
            prompt="tint",
            stream=True,
            partial_images=1,
            response_format="b64_json",
        )
    )

    assert [type(e) for e in events] == [ImageEditPartialImageEvent, ImageEditCompletedEvent]
    assert decode(events[-1].b64_json) == ("PNG", (1024, 1024))


def test_stream_wire_format(gateway: LiveGateway) -> None:
    response = requests.post(
        f"{gateway.url}/v1/images/generations",
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        json={"model": "demo", "prompt": "x", "size": "1024x1024", "stream": True, "partial_images": 3},
        timeout=30,
        stream=True,
    )

    assert response.headers["content-type"].startswith("text/event-stream")
    lines = [line for line in response.iter_lines(decode_unicode=True) if line]
    event_lines = [line.removeprefix("event: ") for line in lines if line.startswith("event: ")]
    assert event_lines == ["image_generation.partial_image"] * 3 + ["image_generation.completed"]
    assert all(line.startswith(("event: ", "data: ")) for line in lines)


def test_errors_before_the_stream_are_plain_http_errors(gateway: LiveGateway) -> None:
    response = requests.post(
        f"{gateway.url}/v1/images/generations",
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        json={"model": "demo", "prompt": "x", "size": "17x17", "stream": True},
        timeout=10,
    )

    assert response.status_code == 400 and response.json()["error"]["param"] == "size"
