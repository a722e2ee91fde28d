"""A task's stored form: the image request and the principal as JSON, the wire shape of a task.

The request is stored without its uploaded bytes (those go to ``task_inputs``), so a task row
stays small and any process can rebuild the request from the row plus its inputs.
"""

from __future__ import annotations

from dataclasses import fields
from decimal import Decimal
from typing import Any

from imagegate.db.tasks import TaskInput, TaskState
from imagegate.domain import ImageRequest, ImageSource, Principal

#: Fields of ImageRequest stored as they are (inputs and decoded images are handled apart).
_PLAIN_FIELDS = (
    "operation",
    "model",
    "prompt",
    "n",
    "size",
    "quality",
    "background",
    "output_format",
    "output_compression",
    "moderation",
    "response_format",
    "stream",
    "partial_images",
    "input_fidelity",
    "user",
    "via_model",
    "extra",
)


def request_to_json(request: ImageRequest) -> tuple[dict[str, Any], list[TaskInput]]:
    """The request as JSON, and the uploaded bytes to store beside it."""
    data = {name: getattr(request, name) for name in _PLAIN_FIELDS}
    inputs: list[TaskInput] = []
    urls: list[dict[str, Any]] = []
    sources = [("image", source) for source in request.sources]
    if request.mask_source is not None:
        sources.append(("mask", request.mask_source))
    for role, source in sources:
        if source.data is not None:
            inputs.append(TaskInput(role=role, param=source.param, data=source.data))
            urls.append({"role": role, "param": source.param, "stored": True})
        else:
            urls.append({"role": role, "param": source.param, "url": source.url})
    data["sources"] = urls
    return data, inputs


def request_from_json(data: dict[str, Any], stored: list[TaskInput]) -> ImageRequest:
    fields = {name: data[name] for name in _PLAIN_FIELDS if name in data}
    request = ImageRequest(**fields)
    uploads = iter(stored)
    for source in data.get("sources", []):
        if source.get("stored"):
            upload = next(uploads)
            image = ImageSource(param=upload.param, data=upload.data)
        else:
            image = ImageSource(param=source["param"], url=source["url"])
        if source["role"] == "mask":
            request.mask_source = image
        else:
            request.sources.append(image)
    return request


_PRINCIPAL_FIELDS = tuple(field.name for field in fields(Principal))


def principal_to_json(principal: Principal) -> dict[str, Any]:
    # Field by field: every field is a plain value but these two, and dataclasses.asdict's deep
    # copy cost a twentieth of a submit.
    data = {name: getattr(principal, name) for name in _PRINCIPAL_FIELDS}
    data["models"] = list(principal.models) if principal.models is not None else None
    data["price_multiplier"] = str(principal.price_multiplier)
    return data


def principal_from_json(data: dict[str, Any]) -> Principal:
    fields = dict(data)
    fields["models"] = tuple(data["models"]) if data.get("models") is not None else None
    fields["price_multiplier"] = Decimal(data.get("price_multiplier", "1"))
    return Principal(**fields)


def task_object(task: TaskState, *, position: int | None = None) -> dict[str, Any]:
    """The task as §10 shows it (poll, list, cancel, webhooks)."""
    body: dict[str, Any] = {
        "id": task.id,
        "object": "image.edit.task" if task.operation == "edit" else "image.generation.task",
        "status": task.status,
        "created_at": int(task.created_at),
        "model": task.model,
        "poll_url": f"/v1/images/tasks/{task.id}",
        "started_at": int(task.started_at) if task.started_at is not None else None,
        "completed_at": int(task.completed_at) if task.completed_at is not None else None,
        "partial_images_received": task.partial_images_received,
    }
    if task.status == "queued" and position is not None:
        body["queue_position"] = position
    if task.result is not None:
        body["result"] = task.result
    if task.error is not None:
        body["error"] = task.error
    return body
