"""What ``generate`` and ``edit`` share: their options, and running one image request three ways.

- plain: one request through the ``openai`` SDK, waiting with a spinner;
- ``--partials K``: ``stream=True, partial_images=K``, each preview counted as it arrives;
- ``--async``: submitted as a task (SPEC §10), followed over SSE or by polling until it ends.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imagegate.cli.client import tasks
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
from imagegate.cli.client.tasks_api import TasksApi
from imagegate.cli.common import CliError

DEFAULT_MODEL = "gpt-image-2"


@dataclass
class ImageJob:
    kind: str  # "generations" or "edits", as in the endpoint's path
    fields: dict[str, Any]  # the request's fields that were given (model, prompt, size, …)
    partials: int | None
    run_async: bool
    out_dir: Path
    images: list[tuple[str, bytes]] = field(default_factory=list)
    mask: tuple[str, bytes] | None = None


def add_image_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-m", "--model", default=DEFAULT_MODEL, help=f"model (default: {DEFAULT_MODEL})")
    parser.add_argument("-s", "--size", help="auto or WxH, e.g. 1536x1024")
    parser.add_argument("-n", type=int, help="number of images (1-10)")
    parser.add_argument("-q", "--quality", help="low, medium, high or auto")
    parser.add_argument("-f", "--format", choices=("png", "jpeg", "webp"), help="output format")
    parser.add_argument("--background", metavar="B", help="transparent, opaque or auto")
    parser.add_argument(
        "--partials", type=int, metavar="K", help="stream, showing K partial previews (0-3) as they arrive"
    )
    parser.add_argument(
        "--async",
        dest="run_async",
        action="store_true",
        help="run as a task on the gateway (for long generations) and wait for it",
    )
    parser.add_argument(
        "-o", "--output-dir", type=Path, default=Path("."), metavar="DIR", help="where to save"
    )
    add_connection_options(parser)


def job_from(args: argparse.Namespace, kind: str) -> ImageJob:
    given = {
        "model": args.model,
        "prompt": args.prompt,
        "size": args.size,
        "n": args.n,
        "quality": args.quality,
        "output_format": args.format,
        "background": args.background,
    }
    return ImageJob(
        kind=kind,
        fields={name: value for name, value in given.items() if value is not None},
        partials=args.partials,
        run_async=args.run_async,
        out_dir=args.output_dir,
    )


def run_job(args: argparse.Namespace, job: ImageJob) -> int:
    connection = connection_from(args)
    saver = Saver(job.out_dir, connection.base_url)
    if job.run_async:
        paths = _run_as_task(connection, job, saver)
    elif job.partials is not None:
        paths = _run_streaming(connection, job, saver)
    else:
        paths = _run_plain(connection, job, saver)
    for path in paths:
        print(path)
    return 0


def _run_plain(connection: Connection, job: ImageJob, saver: Saver) -> list[Path]:
    client = connection.openai_client()
    with gateway_errors(connection), Waiting(stderr_console(), _label(job)):
        if job.kind == "edits":
            raw = client.images.with_raw_response.edit(**job.fields, **_sdk_files(job))
        else:
            raw = client.images.with_raw_response.generate(**job.fields)
        text = raw.http_response.text
    return saver.save_response(request_id(raw.headers), text, response_object(text))


def _run_streaming(connection: Connection, job: ImageJob, saver: Saver) -> list[Path]:
    client = connection.openai_client()
    options: dict[str, Any] = {**job.fields, "partial_images": job.partials}
    events: list[dict[str, Any]] = []
    with gateway_errors(connection), Waiting(stderr_console(), _label(job)) as waiting:
        if job.kind == "edits":
            streamed = client.images.with_streaming_response.edit(stream=True, **options, **_sdk_files(job))
        else:
            streamed = client.images.with_streaming_response.generate(stream=True, **options)
        with streamed as response:
            name = request_id(response.headers)
            for event in response.parse():
                events.append(event.to_dict())
                if event.type.endswith(".partial_image"):
                    waiting.partial()
    completed = [event for event in events if str(event.get("type", "")).endswith(".completed")]
    if not completed:
        raise CliError("the gateway's stream ended without a completed image")
    # The raw response of a stream is its events, in order, as one JSON array.
    raw = saver.save_raw(name, json.dumps(events, ensure_ascii=False, indent=1))
    fallback = completed[0].get("output_format")
    return [raw, *saver.save_images(name, completed, fallback if isinstance(fallback, str) else None)]


def _run_as_task(connection: Connection, job: ImageJob, saver: Saver) -> list[Path]:
    body: dict[str, Any] = dict(job.fields)
    if job.partials is not None:
        body["partial_images"] = job.partials
    console = stderr_console()
    with connection.http_client() as http, gateway_errors(connection):
        api = TasksApi(http)
        if job.kind == "edits":
            files = [("image[]", (name, data, "application/octet-stream")) for name, data in job.images]
            if job.mask is not None:
                files.append(("mask", (job.mask[0], job.mask[1], "application/octet-stream")))
            task = api.submit("edits", data={name: str(value) for name, value in body.items()}, files=files)
        else:
            task = api.submit("generations", json=body)
        console.print(f"task {task['id']} submitted ({task.get('status')})")
        final = tasks.follow(api, str(task["id"]), console, _label(job))
    return tasks.save_result(final, saver)


def _sdk_files(job: ImageJob) -> dict[str, Any]:
    files: dict[str, Any] = {"image": list(job.images)}
    if job.mask is not None:
        files["mask"] = job.mask
    return files


def _label(job: ImageJob) -> str:
    return f"{'editing' if job.kind == 'edits' else 'generating'} with {job.fields.get('model')}"
