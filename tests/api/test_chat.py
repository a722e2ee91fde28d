"""Chat-image models on /v1/chat/completions with the openai SDK (SPEC §4)."""

from __future__ import annotations

import base64
import re

import pytest
import requests
from openai import OpenAI

from tests.conftest import ADMIN_KEY, LiveGateway, image_bytes, open_image

MARKDOWN_IMAGE = re.compile(r"!\[image\]\((?P<url>[^)]+)\)")


def image_urls(content: str | None) -> list[str]:
    return [m["url"] for m in MARKDOWN_IMAGE.finditer(content or "")]


def fetch_image(url: str) -> tuple[str | None, tuple[int, int]]:
    image = open_image(requests.get(url, timeout=10).content)
    return image.format, image.size


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def test_size_prefix_generation(client: OpenAI) -> None:
    completion = client.chat.completions.create(
        model="demo-chat", messages=[{"role": "user", "content": "2048x1152 'a mountain lake at dawn'"}]
    )

    assert completion.object == "chat.completion" and completion.model == "demo-chat"
    choice = completion.choices[0]
    assert choice.finish_reason == "stop" and choice.message.role == "assistant"
    urls = image_urls(choice.message.content)
    assert len(urls) == 1
    assert fetch_image(urls[0])[1] == (2048, 1152)
    assert completion.usage is not None and completion.usage.completion_tokens > 0
    assert (
        completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    )


@pytest.mark.parametrize(
    "text",
    ["3840x2160 \u2018a city at night\u2019", "3840x2160 \u201ca city at night\u201d", "3840x2160 a city"],
)
def test_curly_straight_and_no_quotes(client: OpenAI, text: str) -> None:
    completion = client.chat.completions.create(
        model="demo-chat", messages=[{"role": "user", "content": text}]
    )

    assert fetch_image(image_urls(completion.choices[0].message.content)[0])[1] == (3840, 2160)


def test_metadata_size_and_quality(client: OpenAI) -> None:
    completion = client.chat.completions.create(
        model="demo-chat",
        messages=[{"role": "user", "content": [{"type": "text", "text": "a poster"}]}],
        metadata={"size": "1024x1536", "quality": "high", "output_format": "webp"},
    )

    fmt, size = fetch_image(image_urls(completion.choices[0].message.content)[0])
    assert (fmt, size) == ("WEBP", (1024, 1536))


def test_data_url_image_is_edited(client: OpenAI) -> None:
    red = image_bytes((1024, 1024), "PNG", (230, 10, 10))
    completion = client.chat.completions.create(
        model="demo-chat",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "auto 'keep the subject, studio background'"},
                    {"type": "image_url", "image_url": {"url": data_url(red)}},
                ],
            }
        ],
    )

    url = image_urls(completion.choices[0].message.content)[0]
    image = open_image(requests.get(url, timeout=10).content).convert("RGB")
    red_mean, green_mean, _ = image.resize((1, 1)).getpixel((0, 0))  # type: ignore[misc]
    assert red_mean > green_mean  # derived from the red input


def test_follow_up_turn_edits_the_previous_result(client: OpenAI, gateway: LiveGateway) -> None:
    first = client.chat.completions.create(
        model="demo-chat", messages=[{"role": "user", "content": "1536x1024 'a red barn'"}]
    )
    previous = first.choices[0].message.content or ""
    follow_up = client.chat.completions.create(
        model="demo-chat",
        messages=[
            {"role": "user", "content": "1536x1024 'a red barn'"},
            {"role": "assistant", "content": previous},
            {"role": "user", "content": "now make it blue"},
        ],
    )

    url = image_urls(follow_up.choices[0].message.content)[0]
    assert url != image_urls(previous)[0]
    # An edit of the previous result: auto size follows the input image.
    assert fetch_image(url)[1] == (1536, 1024)


def test_stream_sends_role_content_finish_usage_and_done(gateway: LiveGateway, client: OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="demo-chat",
            messages=[{"role": "user", "content": "a comet"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )

    assert chunks[0].choices[0].delta.role == "assistant"
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(image_urls(content)) == 1
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0

    raw = requests.post(
        f"{gateway.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        json={"model": "demo-chat", "messages": [{"role": "user", "content": "x"}], "stream": True},
        timeout=30,
    )
    assert raw.headers["content-type"].startswith("text/event-stream")
    assert raw.text.rstrip().endswith("data: [DONE]")


def test_custom_size_rule_names_the_failed_condition(client: OpenAI) -> None:
    with pytest.raises(Exception) as caught:
        client.chat.completions.create(
            model="demo-chat", messages=[{"role": "user", "content": "1000x1000 'x'"}]
        )
    assert "divisible by 16" in str(caught.value)
    with pytest.raises(Exception) as caught:
        client.chat.completions.create(
            model="demo-chat", messages=[{"role": "user", "content": "4096x1024 'x'"}]
        )
    assert "3 times" in str(caught.value) or "3840" in str(caught.value)


def test_wrong_endpoints_say_where_to_go(gateway: LiveGateway) -> None:
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    on_chat = requests.post(
        f"{gateway.url}/v1/chat/completions",
        headers=headers,
        json={"model": "demo", "messages": [{"role": "user", "content": "x"}]},
        timeout=10,
    )
    on_images = requests.post(
        f"{gateway.url}/v1/images/generations",
        headers=headers,
        json={"model": "demo-chat", "prompt": "x"},
        timeout=10,
    )

    assert on_chat.status_code == 400 and "/v1/images/" in on_chat.json()["error"]["message"]
    assert on_images.status_code == 400 and "/v1/chat/completions" in on_images.json()["error"]["message"]
    assert on_chat.json()["error"]["param"] == "model"
