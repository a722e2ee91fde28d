"""Async tasks on the wire (SPEC §10): submit answers, poll, cancel, list, live events, admin view.

Submitting goes through the image routes (``api.images``): the ``/async`` paths and ``Prefer:
respond-async`` parse the body exactly as the sync endpoints do, then ``submit`` here answers
``202`` (or ``200`` with the ended task under ``Prefer: wait=N``).

Events (``GET /v1/images/tasks/{id}/events``): a task running in the process that serves the
subscriber is replayed from its first event (partials, then completed or error). A task that
already ended replays its final event from the stored result: ``completed`` events carry what the
result holds (the URL, or the base64 when the task asked for ``b64_json``). A subscriber whose
request lands on another replica than the one running the task waits there, and gets only that
final event when the task ends.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from imagegate import jsonsplice
from imagegate.api.admin.deps import admin_router, not_found
from imagegate.api.deps import gateway, principal
from imagegate.api.protocol import completed_events, images_response, partial_image_event, sse_error
from imagegate.api.responses import JSONPartsResponse, event_stream_response
from imagegate.api.sse import Frame, sse_event
from imagegate.db.tasks import TaskState
from imagegate.domain import Generated, ImageRequest, PartialImage, Principal
from imagegate.errors import GatewayError, InvalidRequest
from imagegate.services.gateway import Gateway
from imagegate.services.tasks import MAX_WAIT_S, TaskService, TaskView
from imagegate.services.tasks_events import Event

router = APIRouter()
admin = admin_router(tags=["tasks"])

#: Clients poll about this often (the ``Retry-After`` of a task not done).
RETRY_AFTER_S = "3"
_WAIT = re.compile(r"^\s*wait\s*=\s*(\d+)\s*$", re.IGNORECASE)


class WireRenderer:
    """What a task stores and streams, in the same shapes as the sync endpoints."""

    def result(self, generated: Generated) -> dict[str, Any]:
        # Plain JSON (no views into upstream bodies): it is stored in the task row.
        parsed: dict[str, Any] = orjson.loads(jsonsplice.dumps(images_response(generated)))
        return parsed

    def partial(self, request: ImageRequest, partial: PartialImage) -> Event:
        name, payload = partial_image_event(request, partial)
        return name, _plain(payload)

    def completed(self, request: ImageRequest, generated: Generated) -> list[Event]:
        return [(name, _plain(payload)) for name, payload in completed_events(request, generated)]

    def error(self, error: GatewayError) -> Event:
        return "error", sse_error(error)


def _plain(payload: dict[str, Any]) -> dict[str, Any]:
    parsed: dict[str, Any] = orjson.loads(jsonsplice.dumps(payload))
    return parsed


async def start_tasks(gw: Gateway) -> None:
    """Start this process's task runner and webhook sender (from the app's lifespan)."""
    await gw.tasks.start(WireRenderer(), gw.request_log)


def _tasks(request: Request) -> TaskService:
    return gateway(request).tasks


# -- submit --------------------------------------------------------------------------------------


def prefer(request: Request) -> tuple[bool, int | None]:
    """``Prefer: respond-async`` and ``wait=N`` (N capped at 60), from every Prefer header."""
    respond_async, wait = False, None
    for header in request.headers.getlist("prefer"):
        for token in header.split(","):
            token = token.strip()
            if token.lower() == "respond-async":
                respond_async = True
            elif (match := _WAIT.match(token)) is not None:
                wait = min(int(match.group(1)), MAX_WAIT_S)
    return respond_async, wait


def wants_task(request: Request) -> bool:
    return request.scope["path"].endswith("/async") or prefer(request)[0]


async def submit(request: Request, image_request: ImageRequest, who: Principal) -> Response:
    webhook_url = image_request.extra.pop("webhook_url", None)
    if webhook_url is not None and not isinstance(webhook_url, str):
        raise InvalidRequest("Invalid value for 'webhook_url': expected a string.", param="webhook_url")
    service = _tasks(request)
    view = await service.submit(image_request, who, webhook_url or None)
    _, wait = prefer(request)
    if wait:
        view = await service.wait(view.task.id, who, wait)
        if view.task.ended:
            return _task_response(view)
    return _task_response(view, status_code=202, location=True)


def _task_response(view: TaskView, *, status_code: int = 200, location: bool = False) -> Response:
    response = JSONPartsResponse(view.to_wire(), status_code=status_code)
    response.headers["cache-control"] = "no-store"
    if not view.task.ended:
        response.headers["retry-after"] = RETRY_AFTER_S
    if location:
        response.headers["location"] = f"/v1/images/tasks/{view.task.id}"
    return response


# -- poll, cancel, list --------------------------------------------------------------------------


async def get_task(request: Request) -> Response:
    who = await principal(request)
    return _task_response(await _tasks(request).get(request.path_params["task_id"], who))


async def cancel_task(request: Request) -> Response:
    who = await principal(request)
    return _task_response(await _tasks(request).cancel(request.path_params["task_id"], who))


async def list_tasks(request: Request) -> Response:
    who = await principal(request)
    query = request.query_params
    try:
        limit = int(query.get("limit") or 20)
    except ValueError:
        raise InvalidRequest("Invalid value for 'limit': expected an integer.", param="limit") from None
    views, more = await _tasks(request).page(
        who, status=query.get("status") or None, limit=limit, after=query.get("after") or None
    )
    data = [view.to_wire() for view in views]
    body = {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": more,
    }
    response = JSONPartsResponse(body)
    response.headers["cache-control"] = "no-store"
    return response


# -- live events ---------------------------------------------------------------------------------


async def task_events(request: Request) -> Response:
    who = await principal(request)
    service = _tasks(request)
    view = await service.get(request.path_params["task_id"], who)
    keepalive_s = gateway(request).settings.stream_keepalive_s
    return event_stream_response(_event_frames(service, view.task), keepalive_s)


async def _event_frames(service: TaskService, task: TaskState) -> AsyncIterator[Frame]:
    final_sent = False
    while True:
        runner = service.runner
        if runner is not None and runner.events.live(task.id):
            async for name, payload in runner.events.follow(task.id):
                final_sent = final_sent or not name.endswith(".partial_image")
                yield sse_event(name, payload)
        current = await service.store.get(task.id)
        if current is None:
            return
        if current.ended:
            if not final_sent:
                for name, payload in final_events(current):
                    yield sse_event(name, payload)
            return
        await asyncio.sleep(0.5)


def final_events(task: TaskState) -> list[Event]:
    """The last events of an ended task, from what is stored."""
    if task.status == "completed" and task.result is not None:
        prefix = "image_edit" if task.operation == "edit" else "image_generation"
        result = task.result
        events: list[Event] = []
        for item in result.get("data", []):
            payload: dict[str, Any] = {
                "type": f"{prefix}.completed",
                "created_at": result.get("created"),
                "background": result.get("background") or "auto",
                "output_format": result.get("output_format") or "png",
                "quality": result.get("quality") or "auto",
                "size": result.get("size") or "auto",
                **item,
            }
            if "usage" in result:
                payload["usage"] = result["usage"]
            events.append((payload["type"], payload))
        return events
    error = task.error or {
        "message": "The task was cancelled.",
        "type": "invalid_request_error",
        "param": None,
        "code": "task_cancelled",
    }
    return [("error", {"type": "error", "error": error})]


# -- admin ---------------------------------------------------------------------------------------


@admin.get("/tasks/{task_id}")
async def admin_get_task(request: Request, task_id: str) -> dict[str, Any]:
    """A task of any key, with its runner, hold and every webhook delivery attempt."""
    service = _tasks(request)
    task = await service.store.get(task_id)
    if task is None:
        raise not_found("task", task_id)
    body = TaskView(task).to_wire()
    body.update(
        key_id=task.key_id,
        runner_id=task.runner_id,
        claims=task.claims,
        hold_micros=task.hold_micros,
        webhook={
            "url": task.webhook_url,
            "state": task.webhook_state,
            "id": task.webhook_id,
            "attempts": [
                {
                    "attempted_at": attempt.attempted_at,
                    "url": attempt.url,
                    "status_code": attempt.status_code,
                    "error": attempt.error,
                    "duration_ms": attempt.duration_ms,
                }
                for attempt in await service.attempts(task_id)
            ],
        },
    )
    return body


router.add_route("/v1/images/tasks", list_tasks, methods=["GET"])
router.add_route("/v1/images/tasks/{task_id}", get_task, methods=["GET"])
router.add_route("/v1/images/tasks/{task_id}/cancel", cancel_task, methods=["POST"])
router.add_route("/v1/images/tasks/{task_id}/events", task_events, methods=["GET"])
