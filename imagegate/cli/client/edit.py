"""``imagegate edit "PROMPT" IMAGE…``: image(s) plus a prompt (and an optional mask) to new image(s).

imagegate edit "make it a watercolor" photo.png --mask mask.png -f webp -o out/
imagegate edit "put the cat on the sofa" cat.png sofa.jpg -s 1536x1024
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from imagegate.cli.client.images import add_image_options, job_from, run_job
from imagegate.cli.common import CliError


def add_parser(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser("edit", help="edit images on a running gateway and save the results")
    parser.add_argument("prompt", metavar="PROMPT")
    parser.add_argument("images", metavar="IMAGE", nargs="+", type=Path, help="input image files (1-16)")
    parser.add_argument(
        "--mask", metavar="M", type=Path, help="a PNG whose transparent pixels mark what to change"
    )
    add_image_options(parser)
    parser.set_defaults(handler=edit_command)


def edit_command(args: argparse.Namespace) -> int:
    job = job_from(args, "edits")
    job.images = [_read(path) for path in args.images]
    job.mask = _read(args.mask) if args.mask is not None else None
    return run_job(args, job)


def _read(path: Path) -> tuple[str, bytes]:
    try:
        return path.name, path.read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}", exit_code=2) from exc
