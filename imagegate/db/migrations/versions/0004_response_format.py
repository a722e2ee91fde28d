"""response_format: the default image response format of a key and of a group (SPEC §2, §9b).

Revision ID: 0004_response_format
Revises: 0003_request_logs
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_response_format"
down_revision: str | Sequence[str] | None = "0003_request_logs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable columns with no default: plain ADD COLUMN on SQLite and PostgreSQL alike.
    op.add_column("api_keys", sa.Column("response_format", sa.String(16), nullable=True))
    op.add_column("groups", sa.Column("response_format", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("groups") as batch:
        batch.drop_column("response_format")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("response_format")
