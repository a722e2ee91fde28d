"""A stand-in for the gateway's async tasks API (SPEC §10), on loopback, for client contract tests.

It answers exactly the shapes §10 promises — 202 with ``Location`` and ``Retry-After``, tasks that go
``queued`` → ``processing`` → ``completed`` with ``result`` being a sync ``ImagesResponse`` (real
demo pictures, hosted under ``/files/`` or inline as ``b64_json``), ``failed`` with OpenAI's error
object, cancel, a newest-first list with ``has_more``, and ``/events`` replaying the task's §5
events over SSE — so a client written against it works against the real endpoints::

    with FakeTasksApi() as api:
        run_cli(["generate", "a fox", "--async"], base_url=api.url, key=api.api_key)

Knobs: ``queued_s`` / ``step_s`` pace the lifecycle, ``processing_s`` holds tasks running (to cancel
them), ``events_enabled`` turns the SSE endpoint off (the client must then poll), ``retry_after``
is the polling hint, ``default_response_format`` the key's default. A prompt containing ``FAIL``
makes the task fail as an upstream error would.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from imagegate.providers import demo_render
from tests.fakes.loopback import LoopbackServer

_SIZE = re.compile(r"([0-9]+)x([0-9]+)")
TERMINAL = ("completed", "failed", "cancelled")


@dataclass
class FakeTask:
    id: str
    owner: str
    object: str
    model: str
    body: dict[str, Any]
    created_at: int
    inputs: list[bytes] = field(default_factory=list)
    mask: bytes | None = None
    status: str = "queued"
    started_at: int | None = None
    completed_at: int | None = None
    partial_images_received: int = 0
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    runner: asyncio.Task[None] | None = None

    def public(self) -> dict[str, Any]:
        task: dict[str, Any] = {
            "id": self.id,
            "object": self.object,
            "status": self.status,
            "created_at": self.created_at,
            "model": self.model,
            "poll_url": f"/v1/images/tasks/{self.id}",
            "started_at": self.started_at,
            "completed_at": self.completed_at,
            "partial_images_received": self.partial_images_received,
        }
        if self.status == "completed":
            task["result"] = self.result
        if self.status == "failed":
            task["error"] = self.error
        return task

    def emit(self, kind: str, data: dict[str, Any]) -> None:
        self.events.append((kind, data))
        self.changed.set()
        self.changed = asyncio.Event()


class FakeTasksApi(LoopbackServer):
    def __init__(self) -> None:
        super().__init__()
        self.api_key = "sk-fake-tasks-owner"
        self.other_key = "sk-fake-tasks-other"
        self.queued_s = 0.05
        self.step_s = 0.05
        self.processing_s = 0.0
        self.retry_after = 3
        self.events_enabled = True
        #: Cut the event stream's connection after this many events, as a dying proxy would.
        self.events_cut_after: int | None = None
        self.default_response_format = "url"
        self.tasks: dict[str, FakeTask] = {}
        self.files: dict[str, bytes] = {}
        self.event_requests = 0
        self.polls = 0
        self._ids = itertools.count(1)

    async def close(self) -> None:
        for task in self.tasks.values():
            if task.runner is not None:
                task.runner.cancel()
        await super().close()

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/images/generations/async", self.submit_generation)
        app.router.add_post("/v1/images/edits/async", self.submit_edit)
        app.router.add_get("/v1/images/tasks", self.list_tasks)
        app.router.add_get("/v1/images/tasks/{id}", self.get_task)
        app.router.add_post("/v1/images/tasks/{id}/cancel", self.cancel_task)
        app.router.add_get("/v1/images/tasks/{id}/events", self.task_events)
        app.router.add_get("/files/{name}", self.get_file)

    # ---- submit

    async def submit_generation(self, request: web.Request) -> web.Response:
        owner = self._owner(request)
        body = await request.json()
        return self._accept(owner, "image.generation.task", body, [], None)

    async def submit_edit(self, request: web.Request) -> web.Response:
        owner = self._owner(request)
        form = await request.post()
        body: dict[str, Any] = {}
        images: list[bytes] = []
        mask = None
        for name, value in form.items():
            if isinstance(value, web.FileField):
                data = value.file.read()
                if name == "mask":
                    mask = data
                elif name == "image" or name.startswith("image["):
                    images.append(data)
            elif value != "":
                body[name] = int(value) if name in ("n", "partial_images") else value
        if not images:
            raise _error(400, "An image is required: send it in the field image or image[].", "image")
        return self._accept(owner, "image.edit.task", body, images, mask)

    def _accept(
        self, owner: str, kind: str, body: dict[str, Any], images: list[bytes], mask: bytes | None
    ) -> web.Response:
        # Validation happens at submit, and its errors are the sync endpoint's.
        if not body.get("model"):
            raise _error(400, "Missing required parameter: 'model'.", "model")
        if not body.get("prompt"):
            raise _error(400, "Missing required parameter: 'prompt'.", "prompt")
        _size(body)
        task_id = f"task_{next(self._ids):04d}{secrets.token_hex(6)}"
        task = FakeTask(
            id=task_id,
            owner=owner,
            object=kind,
            model=str(body["model"]),
            body=body,
            created_at=int(time.time()),
            inputs=images,
            mask=mask,
        )
        self.tasks[task_id] = task
        task.runner = asyncio.create_task(self._run(task))
        headers = {"Location": f"/v1/images/tasks/{task_id}", "Retry-After": str(self.retry_after)}
        return _json(task.public(), status=202, headers=headers)

    # ---- the task's life

    async def _run(self, task: FakeTask) -> None:
        await asyncio.sleep(self.queued_s)
        if task.status != "queued":
            return
        task.status, task.started_at = "processing", int(time.time())
        task.emit("status", {})
        width, height = _size(task.body)
        prefix = "image_edit" if task.object == "image.edit.task" else "image_generation"
        output_format = str(task.body.get("output_format") or "png")
        prompt = str(task.body["prompt"])
        first = await asyncio.to_thread(demo_render.render_generation, prompt, 0, (width, height), False)
        steps = int(task.body.get("partial_images") or 0)
        for step in range(steps):
            await asyncio.sleep(self.step_s)
            preview = await asyncio.to_thread(_encode, demo_render.preview(first, step, steps), "png")
            task.partial_images_received += 1
            task.emit(
                f"{prefix}.partial_image",
                {"type": f"{prefix}.partial_image", "b64_json": _b64(preview), "partial_image_index": step},
            )
        await asyncio.sleep(self.processing_s or self.step_s)
        if task.status != "processing":
            return  # cancelled meanwhile
        if "FAIL" in str(task.body["prompt"]):
            task.status, task.completed_at = "failed", int(time.time())
            task.error = {
                "message": "The upstream refused the prompt: moderation_blocked.",
                "type": "invalid_request_error",
                "param": None,
                "code": "moderation_blocked",
            }
            task.emit("error", {"type": "error", "error": task.error})
            return
        images = [first]
        for index in range(1, int(task.body.get("n") or 1)):
            images.append(
                await asyncio.to_thread(demo_render.render_generation, prompt, index, (width, height), False)
            )
        encoded = [await asyncio.to_thread(_encode, image, output_format) for image in images]
        response_format = task.body.get("response_format") or self.default_response_format
        data = []
        for raw in encoded:
            if response_format == "b64_json":
                data.append({"b64_json": _b64(raw), "revised_prompt": task.body["prompt"]})
            else:
                name = f"{secrets.token_hex(16)}.{output_format}"
                self.files[name] = raw
                data.append({"url": f"{self.url}/files/{name}", "revised_prompt": task.body["prompt"]})
        task.result = {
            "created": int(time.time()),
            "data": data,
            "background": "opaque",
            "output_format": output_format,
            "quality": "medium",
            "size": f"{width}x{height}",
            "usage": {
                "input_tokens": 8,
                "input_tokens_details": {"text_tokens": 8, "image_tokens": 0},
                "output_tokens": 1056,
                "total_tokens": 1064,
            },
        }
        task.status, task.completed_at = "completed", int(time.time())
        for raw in encoded:
            task.emit(
                f"{prefix}.completed",
                {"type": f"{prefix}.completed", "b64_json": _b64(raw), "size": f"{width}x{height}"},
            )

    # ---- read, list, cancel, events

    async def get_task(self, request: web.Request) -> web.Response:
        task = self._task(request)
        self.polls += 1
        headers = {"Cache-Control": "no-store"}
        if task.status not in TERMINAL:
            headers["Retry-After"] = str(self.retry_after)
        return _json(task.public(), headers=headers)

    async def list_tasks(self, request: web.Request) -> web.Response:
        owner = self._owner(request)
        status = request.query.get("status")
        limit = int(request.query.get("limit") or 20)
        mine = [
            task
            for task in reversed(self.tasks.values())
            if task.owner == owner and (not status or task.status == status)
        ]
        after = request.query.get("after")
        if after:
            ids = [task.id for task in mine]
            mine = mine[ids.index(after) + 1 :] if after in ids else []
        page = mine[:limit]
        return _json(
            {
                "object": "list",
                "data": [task.public() for task in page],
                "first_id": page[0].id if page else None,
                "last_id": page[-1].id if page else None,
                "has_more": len(mine) > limit,
            },
            headers={"Cache-Control": "no-store"},
        )

    async def cancel_task(self, request: web.Request) -> web.Response:
        task = self._task(request)
        if task.status in TERMINAL:
            raise _error(409, f"Task {task.id} is already {task.status} and cannot be cancelled.", None)
        task.status, task.completed_at = "cancelled", int(time.time())
        task.emit("status", {})
        return _json(task.public(), headers={"Cache-Control": "no-store"})

    async def task_events(self, request: web.Request) -> web.StreamResponse:
        task = self._task(request)
        if not self.events_enabled:
            raise _error(404, "Not Found", None)
        self.event_requests += 1
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"}
        )
        await response.prepare(request)
        await response.write(b": keep-alive\n\n")
        sent = written = 0
        while True:
            for kind, data in task.events[sent:]:
                if kind != "status":
                    await response.write(f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode())
                    written += 1
                if self.events_cut_after is not None and written >= self.events_cut_after:
                    assert request.transport is not None
                    request.transport.close()
                    return response
            sent = len(task.events)
            if task.status in TERMINAL:
                break
            waiter = task.changed
            try:
                await asyncio.wait_for(waiter.wait(), 15)
            except TimeoutError:
                await response.write(b": keep-alive\n\n")
        await response.write_eof()
        return response

    async def get_file(self, request: web.Request) -> web.Response:
        raw = self.files.get(request.match_info["name"])
        if raw is None:
            raise web.HTTPNotFound()
        return web.Response(body=raw, content_type="image/png")

    # ---- helpers

    def _owner(self, request: web.Request) -> str:
        key = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if key not in (self.api_key, self.other_key):
            raise _error(
                401, "Incorrect API key provided.", None, kind="invalid_request_error", code="invalid_api_key"
            )
        return key

    def _task(self, request: web.Request) -> FakeTask:
        owner = self._owner(request)
        task = self.tasks.get(request.match_info["id"])
        if task is None or task.owner != owner:  # another key's task does not exist for this one
            raise _error(404, f"No task found with id '{request.match_info['id']}'.", None, code="not_found")
        return task


def _size(body: dict[str, Any]) -> tuple[int, int]:
    size = str(body.get("size") or "auto")
    if size == "auto":
        return (1024, 1024)
    match = _SIZE.fullmatch(size)
    if match is None or int(match[1]) % 16 or int(match[2]) % 16 or int(match[1]) * int(match[2]) < 655_360:
        raise _error(
            400,
            f"Invalid size '{size}': width and height must be divisible by 16, "
            "with at least 655,360 pixels; or use 'auto'.",
            "size",
            code="invalid_value",
        )
    return (int(match[1]), int(match[2]))


def _encode(image: Any, output_format: str) -> bytes:
    return demo_render.encode(image, output_format, 90)  # type: ignore[arg-type]


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    headers = {"X-Request-Id": f"req_{secrets.token_hex(12)}", **(headers or {})}
    return web.json_response(body, status=status, headers=headers)


_ERRORS: dict[int, type[web.HTTPException]] = {
    400: web.HTTPBadRequest,
    401: web.HTTPUnauthorized,
    404: web.HTTPNotFound,
    409: web.HTTPConflict,
}


def _error(
    status: int,
    message: str,
    param: str | None,
    *,
    kind: str = "invalid_request_error",
    code: str | None = None,
) -> web.HTTPException:
    """OpenAI's error envelope, raised as aiohttp's exception for that status."""
    kind = "invalid_request_error"
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return _ERRORS[status](
        text=json.dumps(body),
        content_type="application/json",
        headers={"X-Request-Id": f"req_{secrets.token_hex(12)}"},
    )
