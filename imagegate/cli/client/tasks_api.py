"""The async tasks API of SPEC §10 over plain HTTP (the ``openai`` SDK does not know it).

    api = TasksApi(http)                       # an httpx.Client rooted at the gateway's /v1
    task = api.submit("generations", json={"model": "gpt-image-2", "prompt": "…"})
    final = wait_for_task(api, task["id"], waiting)   # events over SSE, else polling

Every answer that is not a success becomes a CliError with the gateway's own message.
"""

from __future__ import annotations

import json
import time
from collections.abc import Generator, Mapping
from contextlib import closing
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from imagegate.cli.client.connection import describe_status
from imagegate.cli.client.progress import Waiting
from imagegate.cli.common import CliError

TERMINAL = frozenset({"completed", "failed", "cancelled"})
#: Between polls: the gateway's Retry-After, kept within these bounds.
MIN_POLL_S, MAX_POLL_S, DEFAULT_POLL_S = 0.2, 10.0, 3.0
#: The gateway sends a keep-alive at least every 15 s; silence this long means the stream is stuck.
EVENTS_READ_TIMEOUT_S = 60.0

Files = list[tuple[str, tuple[str, bytes, str]]]


@dataclass(frozen=True)
class SseEvent:
    type: str
    data: dict[str, Any]


class TasksApi:
    def __init__(self, http: httpx.Client) -> None:
        self.http = http

    def submit(
        self,
        endpoint: str,
        *,
        json: Mapping[str, Any] | None = None,
        data: Mapping[str, str] | None = None,
        files: Files | None = None,
    ) -> dict[str, Any]:
        """POST /images/{generations,edits}/async: 202 with the queued task (or 200, already final)."""
        response = self.http.post(f"/images/{endpoint}/async", json=json, data=data, files=files)
        return _task(response)

    def get(self, task_id: str) -> tuple[dict[str, Any], float]:
        """The task and how long to wait before asking again (its Retry-After)."""
        response = self.http.get(_path(task_id))
        return _task(response), _retry_after(response)

    def cancel(self, task_id: str) -> dict[str, Any]:
        return _task(self.http.post(f"{_path(task_id)}/cancel"))

    def list(
        self, *, status: str | None = None, limit: int | None = None, after: str | None = None
    ) -> dict[str, Any]:
        params = {
            name: value for name, value in (("status", status), ("limit", limit), ("after", after)) if value
        }
        return _json(self.http.get("/images/tasks", params=params))

    def events(self, task_id: str) -> Generator[SseEvent, None, None] | None:
        """The task's §5 events, replayed from its start; None when the gateway does not offer them."""
        timeout = httpx.Timeout(EVENTS_READ_TIMEOUT_S, connect=10.0)
        request = self.http.build_request("GET", f"{_path(task_id)}/events", timeout=timeout)
        request.headers["Accept"] = "text/event-stream"
        response = self.http.send(request, stream=True)
        if response.status_code != 200 or not response.headers.get("content-type", "").startswith(
            "text/event-stream"
        ):
            response.close()
            return None
        return _read_events(response)


def wait_for_task(api: TasksApi, task_id: str, waiting: Waiting) -> dict[str, Any]:
    """Follow a task until it ends: live events while the gateway streams them, then polls."""
    task, retry_after = _look(api, task_id, waiting)
    if task.get("status") in TERMINAL:
        return task
    events = api.events(task_id)
    if events is not None:
        try:
            with closing(events):  # leaving early must still close the connection
                for event in events:
                    if event.type.endswith(".partial_image"):
                        waiting.status("processing")
                        waiting.partial()
                    elif event.type.endswith(".completed") or event.type == "error":
                        # With n > 1 several images complete: the task, not the event, says when it is done.
                        task, retry_after = _look(api, task_id, waiting)
                        if task.get("status") in TERMINAL:
                            return task
        except httpx.TransportError:
            pass  # a dropped or silent stream: polling carries on from here
        task, retry_after = _look(api, task_id, waiting)
    while task.get("status") not in TERMINAL:
        time.sleep(retry_after)
        task, retry_after = _look(api, task_id, waiting)
    return task


def _look(api: TasksApi, task_id: str, waiting: Waiting) -> tuple[dict[str, Any], float]:
    task, retry_after = api.get(task_id)
    waiting.status(str(task.get("status")))
    return task, retry_after


def _read_events(response: httpx.Response) -> Generator[SseEvent, None, None]:
    try:
        kind, data_lines = "message", list[str]()
        for line in response.iter_lines():
            if line.startswith(":"):
                continue  # keep-alive comment
            if line == "":
                if data_lines:
                    yield _event(kind, "\n".join(data_lines))
                kind, data_lines = "message", []
                continue
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                kind = value
            elif field == "data":
                data_lines.append(value)
        if data_lines:
            yield _event(kind, "\n".join(data_lines))
    finally:
        response.close()


def _event(kind: str, data: str) -> SseEvent:
    try:
        payload = json.loads(data)
    except ValueError:
        payload = {}
    if not isinstance(payload, dict):
        payload = {}
    # The event name may be given only in the JSON's `type` (OpenAI's own streams carry both).
    return SseEvent(type=str(payload.get("type") or kind), data=payload)


def _path(task_id: str) -> str:
    return f"/images/tasks/{quote(task_id, safe='')}"


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not response.is_success:
        fallback = f"HTTP {response.status_code} {response.reason_phrase}: {response.text[:200]}"
        raise CliError(describe_status(response.status_code, body, response.headers, fallback))
    if not isinstance(body, dict):
        raise CliError(
            f"the gateway answered {response.request.url} with something that is not a JSON object"
        )
    return body


def _task(response: httpx.Response) -> dict[str, Any]:
    task = _json(response)
    if not isinstance(task.get("id"), str):
        raise CliError(f"the gateway answered {response.request.url} without a task id")
    return task


def _retry_after(response: httpx.Response) -> float:
    try:
        seconds = float(response.headers.get("retry-after", DEFAULT_POLL_S))
    except ValueError:
        seconds = DEFAULT_POLL_S
    return min(max(seconds, MIN_POLL_S), MAX_POLL_S)
