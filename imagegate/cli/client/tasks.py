"""``imagegate tasks list | show ID | wait ID | cancel ID``: the key's async tasks (SPEC §10).

imagegate tasks list --status processing
imagegate tasks wait task_0123 -o out/      # progress, then saves the result like `generate`
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from imagegate.cli.client.connection import (
    add_connection_options,
    connection_from,
    error_message,
    gateway_errors,
)
from imagegate.cli.client.progress import Waiting, stderr_console
from imagegate.cli.client.saving import Saver
from imagegate.cli.client.tasks_api import TasksApi, wait_for_task
from imagegate.cli.common import CliError
from imagegate.cli.groups import render_table


def add_parser(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser("tasks", help="list, show, wait for or cancel async image tasks")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    listing = actions.add_parser("list", help="the key's tasks, newest first")
    listing.add_argument("--status", help="only tasks in this status (queued, processing, completed, …)")
    listing.add_argument("--limit", type=int, help="at most this many")
    listing.add_argument("--after", metavar="TASK_ID", help="the page after this task")
    add_connection_options(listing)
    listing.set_defaults(handler=list_command)

    show = actions.add_parser("show", help="print a task as JSON")
    show.add_argument("task_id", metavar="ID")
    add_connection_options(show)
    show.set_defaults(handler=show_command)

    wait = actions.add_parser("wait", help="wait for a task, then save its images and result")
    wait.add_argument("task_id", metavar="ID")
    wait.add_argument("-o", "--output-dir", type=Path, default=Path("."), metavar="DIR", help="where to save")
    add_connection_options(wait)
    wait.set_defaults(handler=wait_command)

    cancel = actions.add_parser("cancel", help="cancel a task that has not ended")
    cancel.add_argument("task_id", metavar="ID")
    add_connection_options(cancel)
    cancel.set_defaults(handler=cancel_command)


def list_command(args: argparse.Namespace) -> int:
    connection = connection_from(args)
    with connection.http_client() as http, gateway_errors(connection):
        page = TasksApi(http).list(status=args.status, limit=args.limit, after=args.after)
    rows = [_row(task) for task in page.get("data") or [] if isinstance(task, dict)]
    if not rows:
        print("No tasks.")
        return 0
    print(render_table(("ID", "STATUS", "KIND", "MODEL", "CREATED"), rows))
    if page.get("has_more"):
        print(f"More: imagegate tasks list --after {rows[-1][0]}")
    return 0


def show_command(args: argparse.Namespace) -> int:
    connection = connection_from(args)
    with connection.http_client() as http, gateway_errors(connection):
        task, _ = TasksApi(http).get(args.task_id)
    print(json.dumps(task, ensure_ascii=False, indent=2))
    return 0


def wait_command(args: argparse.Namespace) -> int:
    connection = connection_from(args)
    with connection.http_client() as http, gateway_errors(connection):
        task = follow(TasksApi(http), args.task_id, stderr_console(), f"task {args.task_id}")
    for path in save_result(task, Saver(args.output_dir, connection.base_url)):
        print(path)
    return 0


def cancel_command(args: argparse.Namespace) -> int:
    connection = connection_from(args)
    with connection.http_client() as http, gateway_errors(connection):
        task = TasksApi(http).cancel(args.task_id)
    print(f"{task['id']}: {task.get('status')}")
    return 0 if task.get("status") == "cancelled" else 1


def follow(api: TasksApi, task_id: str, console: Console, label: str) -> dict[str, Any]:
    """Wait for a task with progress shown; an interrupted wait says how to pick it up again."""
    try:
        with Waiting(console, label) as waiting:
            return wait_for_task(api, task_id, waiting)
    except KeyboardInterrupt:
        console.print(f"The task goes on; wait for it again with: imagegate tasks wait {task_id}")
        raise


def save_result(task: dict[str, Any], saver: Saver) -> list[Path]:
    """A completed task's result saved as a sync response would be, named by the task id."""
    task_id, status = str(task["id"]), task.get("status")
    if status == "failed":
        message = error_message({"error": task.get("error")}) or "no error given"
        raise CliError(f"task {task_id} failed: {message}")
    if status == "cancelled":
        raise CliError(f"task {task_id} was cancelled")
    result = task.get("result")
    if status != "completed" or not isinstance(result, dict):
        raise CliError(f"task {task_id} is {status} without a result")
    return saver.save_response(task_id, json.dumps(result, ensure_ascii=False, indent=1), result)


def _row(task: dict[str, Any]) -> tuple[str, ...]:
    created = task.get("created_at")
    when = (
        datetime.fromtimestamp(created, UTC).strftime("%Y-%m-%d %H:%M:%S")
        if isinstance(created, int)
        else "-"
    )
    kind = "edit" if task.get("object") == "image.edit.task" else "generation"
    return (str(task.get("id")), str(task.get("status")), kind, str(task.get("model") or "-"), when)
