"""config_versions (a counter per shared config, bumped by each write) and channels.enabled.

Revision ID: 0007_config_versions
Revises: 0006_tasks
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_config_versions"
down_revision: str | Sequence[str] | None = "0006_tasks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    table = op.create_table(
        "config_versions",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_config_versions")),
    )
    # Rows exist from the start, so a bump is always an UPDATE (no insert race between writers).
    op.bulk_insert(table, [{"name": "channels", "version": 0}, {"name": "prices", "version": 0}])
    with op.batch_alter_table("channels") as batch:
        batch.add_column(sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.true()))


def downgrade() -> None:
    with op.batch_alter_table("channels") as batch:
        batch.drop_column("enabled")
    op.drop_table("config_versions")
