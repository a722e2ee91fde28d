"""Tables of async tasks (SPEC §10): the task queue itself, edit inputs, webhook attempts and keys'
webhook settings.

The ``tasks`` table is the queue: a runner claims a row by moving it from ``queued`` (or from
``processing`` with an expired lease) to ``processing`` under its own ``runner_id`` in one
conditional UPDATE. Times are Unix seconds as floats: the wire shape wants Unix seconds, and
lease arithmetic is then the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from imagegate.db.tables import Base, BigIntId


class TaskRow(Base):
    __tablename__ = "tasks"
    __table_args__ = (
        # The queue's order, whole: a claim reads the oldest of a state without sorting.
        Index("ix_tasks_status_created_id", "status", "created_at", "id"),
        Index("ix_tasks_key_created", "key_id", "created_at"),
        Index("ix_tasks_webhook_due", "webhook_state", "webhook_next_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(32))
    operation: Mapped[str] = mapped_column(String(16))
    model: Mapped[str] = mapped_column(String(200))
    #: queued | processing | completed | failed | cancelled
    status: Mapped[str] = mapped_column(String(16))
    #: The image request as submitted (inputs with bytes live in task_inputs).
    request: Mapped[dict[str, object]] = mapped_column(JSON)
    #: Who submitted it, as authenticated then: the run uses the same access and prices.
    principal: Mapped[dict[str, object]] = mapped_column(JSON)
    #: The ledger hold taken at submit (request id = task id); None: nothing was held.
    hold_micros: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[float] = mapped_column(Double)
    started_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    completed_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    runner_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_until: Mapped[float | None] = mapped_column(Double, nullable=True)
    #: How many times a runner claimed it (a second claim is a reclaim after a runner died).
    claims: Mapped[int] = mapped_column(Integer, server_default="0")
    cancel_requested: Mapped[bool] = mapped_column(Boolean, server_default=false())
    partial_images_received: Mapped[int] = mapped_column(Integer, server_default="0")
    result: Mapped[dict[str, object] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    error: Mapped[dict[str, object] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    webhook_url: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    #: pending | delivered | failed; None: no webhook.
    webhook_state: Mapped[str | None] = mapped_column(String(16), nullable=True)
    webhook_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    #: The exact body sent on every attempt (signed per attempt with a fresh timestamp).
    webhook_body: Mapped[str | None] = mapped_column(Text, nullable=True)
    webhook_next_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    webhook_attempts: Mapped[int] = mapped_column(Integer, server_default="0")


class TaskInputRow(Base):
    """An uploaded edit input, kept so that any process can run the task."""

    __tablename__ = "task_inputs"

    task_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: image | mask
    role: Mapped[str] = mapped_column(String(8))
    param: Mapped[str] = mapped_column(String(64))
    data: Mapped[bytes] = mapped_column(LargeBinary)


class WebhookAttemptRow(Base):
    __tablename__ = "task_webhook_attempts"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(String(40), index=True)
    webhook_id: Mapped[str] = mapped_column(String(40))
    url: Mapped[str] = mapped_column(String(2000))
    attempted_at: Mapped[float] = mapped_column(Double)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    duration_ms: Mapped[float] = mapped_column(Double)


class KeyWebhookRow(Base):
    """A key's webhook settings: default URL and signing secret (``whsec_…``)."""

    __tablename__ = "key_webhooks"

    key_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id"), primary_key=True)
    url: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    secret: Mapped[str | None] = mapped_column(String(100), nullable=True)
