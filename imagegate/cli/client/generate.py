"""``imagegate generate "PROMPT"``: text to image(s), saved with the raw response.

imagegate generate "a red fox in snow" -m gpt-image-2 -s 1536x1024 -q high -o out/
imagegate generate "a 4K poster" -s 3840x2160 --async          # as a task, for long runs
"""

from __future__ import annotations

import argparse
from typing import Any

from imagegate.cli.client.images import add_image_options, job_from, run_job


def add_parser(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser("generate", help="generate images on a running gateway and save them")
    parser.add_argument("prompt", metavar="PROMPT")
    add_image_options(parser)
    parser.set_defaults(handler=generate_command)


def generate_command(args: argparse.Namespace) -> int:
    return run_job(args, job_from(args, "generations"))
