"""A task row as ``TaskStore.create`` takes it, for tests that write tasks straight to the store."""

from __future__ import annotations

import time
from typing import Any


def queued_task(task_id: str, *, key_id: str = "key_x", **values: Any) -> dict[str, Any]:
    """A queued generation of the demo model owned by ``key_id``; ``values`` override any field."""
    return {
        "id": task_id,
        "key_id": key_id,
        "operation": "generate",
        "model": "demo",
        "status": "queued",
        "request": {"model": "demo", "prompt": "p"},
        "principal": {"key_id": key_id, "name": "x"},
        "created_at": time.time(),
        **values,
    }
