"""A chat-image model bound to an image model served by an OpenAI Images upstream (SPEC §4)."""

from __future__ import annotations

import base64

import pytest
import requests

from tests.api.test_chat import image_urls
from tests.conftest import GatewayFactory, LiveGateway, image_bytes, open_image, openai_channel
from tests.fakes.openai_upstream import FakeOpenAIUpstream


@pytest.fixture
def chat_gateway(make_gateway: GatewayFactory, upstream: FakeOpenAIUpstream) -> LiveGateway:
    return make_gateway(
        channels=[openai_channel(upstream, ["gpt-image-2"], name="images")],
        models={"gpt-image-2-chat": {"kind": "chat-image", "image_model": "gpt-image-2"}},
    )


@pytest.mark.parametrize("upstream_streams", [True, False])
def test_size_prefix_and_metadata_reach_the_images_upstream(
    chat_gateway: LiveGateway, upstream: FakeOpenAIUpstream, upstream_streams: bool
) -> None:
    upstream.stream_supported = upstream_streams
    client = chat_gateway.client()

    chunks = list(
        client.chat.completions.create(
            model="gpt-image-2-chat",
            messages=[{"role": "user", "content": "2048x1152 \u2018a harbour at dawn\u2019"}],
            metadata={"quality": "high"},
            stream=True,
        )
    )
    plain = client.chat.completions.create(
        model="gpt-image-2-chat",
        messages=[{"role": "user", "content": "a lighthouse"}],
        metadata={"size": "1024x1536", "output_format": "webp"},
    )

    streamed_request, plain_request = upstream.requests[-2].body, upstream.requests[-1].body
    assert streamed_request["prompt"] == "a harbour at dawn" and streamed_request["size"] == "2048x1152"
    assert streamed_request["quality"] == "high" and streamed_request["model"] == "gpt-image-2"
    assert plain_request["size"] == "1024x1536" and plain_request["output_format"] == "webp"
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert open_image(requests.get(image_urls(content)[0], timeout=10).content).size == (2048, 1152)
    image = open_image(requests.get(image_urls(plain.choices[0].message.content)[0], timeout=10).content)
    assert (image.format, image.size) == ("WEBP", (1024, 1536))


def test_data_url_image_then_follow_up_edit_go_to_the_edits_endpoint(
    chat_gateway: LiveGateway, upstream: FakeOpenAIUpstream
) -> None:
    client = chat_gateway.client()
    source = "data:image/png;base64," + base64.b64encode(image_bytes((1024, 1024))).decode()
    first = client.chat.completions.create(
        model="gpt-image-2-chat",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "1024x1024 'studio background'"},
                    {"type": "image_url", "image_url": {"url": source}},
                ],
            }
        ],
    )
    first_edit = upstream.requests[-1]
    follow_up = client.chat.completions.create(
        model="gpt-image-2-chat",
        messages=[
            {"role": "user", "content": "1024x1024 'studio background'"},
            {"role": "assistant", "content": first.choices[0].message.content},
            {"role": "user", "content": "now make it blue"},
        ],
    )

    assert first_edit.path == "/v1/images/edits" and len(first_edit.images) == 1
    second_edit = upstream.requests[-1]
    assert second_edit.path == "/v1/images/edits" and second_edit.fields["prompt"] == "now make it blue"
    # The follow-up edits the image this gateway produced in the previous turn.
    previous = requests.get(image_urls(first.choices[0].message.content)[0], timeout=10).content
    assert second_edit.images[0].data == previous
    assert image_urls(follow_up.choices[0].message.content)
