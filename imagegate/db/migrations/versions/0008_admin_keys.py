"""Admin keys, console sessions, request details (the console's gallery and detail view).

Revision ID: 0008_admin_keys
Revises: 0007_config_versions
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_admin_keys"
down_revision: str | Sequence[str] | None = "0007_config_versions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN (with a default, so NOT NULL is fine) on SQLite and PostgreSQL alike: a
    # batch copy of api_keys would trip the foreign keys that point at it.
    op.add_column("api_keys", sa.Column("admin", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.create_table(
        "console_sessions",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_console_sessions")),
    )
    op.create_index("ix_console_sessions_expires_at", "console_sessions", ["expires_at"])
    op.create_table(
        "request_details",
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=True),
        sa.Column("params", sa.JSON(), nullable=True),
        sa.Column("inputs", sa.JSON(), nullable=True),
        sa.Column("outputs", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_request_details")),
    )
    op.create_index("ix_request_details_time", "request_details", ["time"])
    op.create_table(
        "request_log_days",
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("channel", sa.String(200), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("errors", sa.BigInteger(), nullable=False),
        sa.Column("images", sa.BigInteger(), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_micros", sa.BigInteger(), nullable=False),
        sa.Column("latency_ms_sum", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("day", "key_id", "model", "channel", name=op.f("pk_request_log_days")),
    )
    op.create_index("ix_request_log_days_key_id_day", "request_log_days", ["key_id", "day"])
    op.create_table(
        "request_log_days_done",
        sa.Column("day", sa.String(10), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_request_log_days_done")),
    )
    op.create_index(
        "ix_request_logs_time_sums",
        "request_logs",
        ["time", "status", "n", "cost_micros", "latency_ms", "model", "channel", "error_code"],
    )


def downgrade() -> None:
    op.drop_index("ix_request_logs_time_sums", table_name="request_logs")
    op.drop_table("request_log_days_done")
    op.drop_index("ix_request_log_days_key_id_day", table_name="request_log_days")
    op.drop_table("request_log_days")
    op.drop_index("ix_request_details_time", table_name="request_details")
    op.drop_table("request_details")
    op.drop_index("ix_console_sessions_expires_at", table_name="console_sessions")
    op.drop_table("console_sessions")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("admin")
