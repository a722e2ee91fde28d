"""request_logs (one row per API request) and channels (upstreams added through the admin API).

Revision ID: 0003_request_logs
Revises: 0002_accounts
Create Date: 2025-01-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_request_logs"
down_revision: str | Sequence[str] | None = "0002_accounts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain SQLAlchemy types, not the app's, so this file keeps meaning the same schema however
    # the table modules change later.
    op.create_table(
        "request_logs",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("endpoint", sa.String(300), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=True),
        sa.Column("group", sa.String(200), nullable=True),
        sa.Column("model", sa.String(200), nullable=True),
        sa.Column("channel", sa.String(200), nullable=True),
        sa.Column("upstream_model", sa.String(200), nullable=True),
        sa.Column("upstream_request_id", sa.String(200), nullable=True),
        sa.Column("stream", sa.Boolean(), nullable=True),
        sa.Column("n", sa.Integer(), nullable=True),
        sa.Column("size", sa.String(32), nullable=True),
        sa.Column("quality", sa.String(32), nullable=True),
        sa.Column("user", sa.String(300), nullable=True),
        sa.Column("client_ip", sa.String(64), nullable=True),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("ttfb_ms", sa.Float(), nullable=True),
        sa.Column("input_tokens", sa.Integer(), nullable=True),
        sa.Column("output_tokens", sa.Integer(), nullable=True),
        sa.Column("cost_micros", sa.BigInteger(), nullable=True),
        sa.Column("error_type", sa.String(100), nullable=True),
        sa.Column("error_code", sa.String(100), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("attempts", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_request_logs")),
    )
    op.create_index("ix_request_logs_time_id", "request_logs", ["time", "id"])
    op.create_index("ix_request_logs_key_id_time", "request_logs", ["key_id", "time"])
    op.create_index("ix_request_logs_model_time", "request_logs", ["model", "time"])
    op.create_table(
        "channels",
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("base_url", sa.Text(), nullable=False),
        sa.Column("api_key", sa.Text(), nullable=False),
        sa.Column("models", sa.JSON(), nullable=False),
        sa.Column("model_map", sa.JSON(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("weight", sa.Integer(), nullable=False),
        sa.Column("timeout_s", sa.Float(), nullable=False),
        sa.Column("max_concurrency", sa.Integer(), nullable=True),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_channels")),
    )


def downgrade() -> None:
    op.drop_table("channels")
    op.drop_index("ix_request_logs_model_time", table_name="request_logs")
    op.drop_index("ix_request_logs_key_id_time", table_name="request_logs")
    op.drop_index("ix_request_logs_time_id", table_name="request_logs")
    op.drop_table("request_logs")
