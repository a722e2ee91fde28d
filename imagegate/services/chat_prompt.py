"""Reading a chat conversation as an image job: the prompt, its size prefix, its input images."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from imagegate.domain import ChatTurn, ImageSource
from imagegate.errors import InvalidRequest
from imagegate.media.links import image_links

# `3840x2160 'prompt'`, `auto "prompt"`, `1024x1024 ‘prompt’` or no quotes at all.
_SIZE_PREFIX = re.compile(
    r"^\s*(?P<size>auto|\d{1,5}\s*[xX×]\s*\d{1,5})(?:\s+|\s*(?=['\"‘’“”]))(?P<rest>.*)$", re.S
)
_QUOTES = "'\"‘’“”"


@dataclass
class ChatImageJob:
    prompt: str
    size: str | None  # from the prefix; None when the prompt has none
    images: list[ImageSource] = field(default_factory=list)
    from_history: bool = False


def split_size_prefix(text: str) -> tuple[str | None, str]:
    """``("3840x2160", "prompt")`` for ``3840x2160 'prompt'``; ``(None, text)`` without a prefix."""
    match = _SIZE_PREFIX.match(text)
    if not match or not match["rest"].strip():
        return None, text.strip()
    size = re.sub(r"\s*[xX×]\s*", "x", match["size"].lower())
    rest = match["rest"].strip()
    if len(rest) >= 2 and rest[0] in _QUOTES and rest[-1] in _QUOTES:
        rest = rest[1:-1].strip()
    return size, rest


def _images_of(message: ChatTurn, index: int) -> list[ImageSource]:
    return [
        ImageSource(param=f"messages[{index}].content[{part_index}].image_url.url", url=url)
        for part_index, url in message.images
    ]


def _produced_images(message: ChatTurn, index: int, own_prefix: str) -> list[ImageSource]:
    """Images this gateway produced in an earlier assistant message (only its own URLs)."""
    text = message.text
    return [
        ImageSource(param=f"messages[{index}].content", url=url)
        for url in image_links(text)
        if url.startswith(own_prefix)
    ]


def read_conversation(messages: list[ChatTurn], own_files_prefix: str) -> ChatImageJob:
    """The job a conversation asks for (SPEC §4).

    The prompt is the last user message's text. Its images make an edit; without any, the most
    recent image of the conversation (a user's, or one this gateway made) is edited, so a
    follow-up like "now make it blue" works; with none at all it is a generation.
    """
    last_user = next((i for i in range(len(messages) - 1, -1, -1) if messages[i].role == "user"), None)
    if last_user is None:
        raise InvalidRequest("The conversation needs a user message with the prompt.", param="messages")
    size, prompt = split_size_prefix(messages[last_user].text)
    if not prompt:
        raise InvalidRequest(
            "The last user message has no text: it is the image prompt.",
            param=f"messages[{last_user}].content",
        )
    job = ChatImageJob(prompt=prompt, size=size, images=_images_of(messages[last_user], last_user))
    if job.images:
        return job
    for index in range(last_user - 1, -1, -1):
        message = messages[index]
        if message.role == "user":
            found = _images_of(message, index)
        elif message.role == "assistant":
            found = _produced_images(message, index, own_files_prefix)
        else:
            found = []
        if found:
            job.images = found[-1:]  # the most recent one
            job.from_history = True
            return job
    return job
