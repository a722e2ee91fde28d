"""tasks (async image requests, SPEC §10), their inputs and webhook attempts; keys' webhook settings.

Revision ID: 0006_tasks
Revises: 0005_ledger_leases
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_tasks"
down_revision: str | Sequence[str] | None = "0005_ledger_leases"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tasks",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("operation", sa.String(16), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("principal", sa.JSON(), nullable=False),
        sa.Column("hold_micros", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("started_at", sa.Double(), nullable=True),
        sa.Column("completed_at", sa.Double(), nullable=True),
        sa.Column("runner_id", sa.String(64), nullable=True),
        sa.Column("lease_until", sa.Double(), nullable=True),
        sa.Column("claims", sa.Integer(), server_default="0", nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("partial_images_received", sa.Integer(), server_default="0", nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.Column("webhook_url", sa.String(2000), nullable=True),
        sa.Column("webhook_state", sa.String(16), nullable=True),
        sa.Column("webhook_id", sa.String(40), nullable=True),
        sa.Column("webhook_body", sa.Text(), nullable=True),
        sa.Column("webhook_next_at", sa.Double(), nullable=True),
        sa.Column("webhook_attempts", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tasks")),
    )
    op.create_index("ix_tasks_status_created", "tasks", ["status", "created_at"])
    op.create_index("ix_tasks_key_created", "tasks", ["key_id", "created_at"])
    op.create_index("ix_tasks_webhook_due", "tasks", ["webhook_state", "webhook_next_at"])
    op.create_table(
        "task_inputs",
        sa.Column("task_id", sa.String(40), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(8), nullable=False),
        sa.Column("param", sa.String(64), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("task_id", "position", name=op.f("pk_task_inputs")),
    )
    op.create_table(
        "task_webhook_attempts",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("task_id", sa.String(40), nullable=False),
        sa.Column("webhook_id", sa.String(40), nullable=False),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("attempted_at", sa.Double(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.String(500), nullable=True),
        sa.Column("duration_ms", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task_webhook_attempts")),
    )
    op.create_index("ix_task_webhook_attempts_task_id", "task_webhook_attempts", ["task_id"])
    op.create_table(
        "key_webhooks",
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("url", sa.String(2000), nullable=True),
        sa.Column("secret", sa.String(100), nullable=True),
        sa.ForeignKeyConstraint(["key_id"], ["api_keys.id"], name=op.f("fk_key_webhooks_key_id_api_keys")),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_key_webhooks")),
    )


def downgrade() -> None:
    op.drop_table("key_webhooks")
    op.drop_index("ix_task_webhook_attempts_task_id", table_name="task_webhook_attempts")
    op.drop_table("task_webhook_attempts")
    op.drop_table("task_inputs")
    op.drop_index("ix_tasks_webhook_due", table_name="tasks")
    op.drop_index("ix_tasks_key_created", table_name="tasks")
    op.drop_index("ix_tasks_status_created", table_name="tasks")
    op.drop_table("tasks")
