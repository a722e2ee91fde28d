"""``imagegate chat``: talk to a chat-image model, one line of stdin per turn, saving each reply's images.

The whole conversation is re-sent each turn, so a follow-up ("now make it blue") edits the last
image, as the chat-image model does server-side (SPEC §4). A size goes in front of the prompt:
``1536x1024 'a harbour at dawn'``. An empty line is skipped; ``/quit`` or end of input ends.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

from imagegate.cli.client.connection import (
    Connection,
    add_connection_options,
    connection_from,
    gateway_errors,
    request_id,
    response_object,
)
from imagegate.cli.client.progress import Waiting, stderr_console
from imagegate.cli.client.saving import Saver
from imagegate.cli.common import CliError

DEFAULT_MODEL = "gpt-image-2-chat"
_MARKDOWN_IMAGE = re.compile(r"!\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def add_parser(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser("chat", help="chat with a chat-image model, saving each reply's images")
    parser.add_argument("-m", "--model", default=DEFAULT_MODEL, help=f"model (default: {DEFAULT_MODEL})")
    parser.add_argument(
        "-o", "--output-dir", type=Path, default=Path("."), metavar="DIR", help="where to save"
    )
    add_connection_options(parser)
    parser.set_defaults(handler=chat_command)


def chat_command(args: argparse.Namespace) -> int:
    connection = connection_from(args)
    saver = Saver(args.output_dir, connection.base_url)
    console = stderr_console()
    messages: list[dict[str, Any]] = []
    failures = 0
    for line in _lines():
        text = line.strip()
        if not text:
            continue
        if text in ("/quit", "/exit"):
            break
        messages.append({"role": "user", "content": text})
        try:
            reply, paths = _turn(connection, args.model, messages, saver)
        except CliError as exc:
            # The turn is forgotten, so the next line starts from the last good reply.
            messages.pop()
            failures += 1
            console.print(f"imagegate: error: {exc.message}")
            continue
        messages.append({"role": "assistant", "content": reply})
        console.print(reply)
        for path in paths:
            print(path, flush=True)
    return 1 if failures else 0


def _turn(
    connection: Connection, model: str, messages: list[dict[str, Any]], saver: Saver
) -> tuple[str, list[Path]]:
    client = connection.openai_client()
    with gateway_errors(connection), Waiting(stderr_console(), f"{model} is drawing"):
        raw = client.chat.completions.with_raw_response.create(model=model, messages=cast(Any, messages))
        text = raw.http_response.text
    name = request_id(raw.headers)
    message = _first_message(response_object(text))
    paths = [saver.save_raw(name, text)]
    paths += saver.save_images(name, [{"url": url} for url in reply_image_urls(message)], None)
    return str(message.get("content") or ""), paths


def _first_message(body: dict[str, Any]) -> dict[str, Any]:
    choices = body.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices else None
    message = choice.get("message") if isinstance(choice, dict) else None
    if not isinstance(message, dict):
        raise CliError("the gateway's reply has no message")
    return message


def reply_image_urls(message: dict[str, Any]) -> list[str]:
    """The images of a reply: ``message.images`` (OpenRouter-style), else the Markdown image links."""
    urls: list[str] = []
    for image in message.get("images") or []:
        url = (image.get("image_url") or {}).get("url") if isinstance(image, dict) else None
        if isinstance(url, str) and url not in urls:
            urls.append(url)
    if not urls:
        for url in _MARKDOWN_IMAGE.findall(str(message.get("content") or "")):
            if url not in urls:
                urls.append(url)
    return urls


def _lines() -> Iterator[str]:
    # input() gives line editing, but writes its prompt to stdout: only when stdout is the terminal
    # too, since otherwise stdout carries the saved paths for a script.
    editing = sys.stdin.isatty() and sys.stdout.isatty()
    while True:
        if sys.stdin.isatty() and not editing:
            print("you> ", end="", file=sys.stderr, flush=True)
        try:
            line = input("you> ") if editing else sys.stdin.readline()
        except EOFError:
            return
        if not editing and line == "":
            return
        yield line
