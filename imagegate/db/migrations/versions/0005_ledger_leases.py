"""ledger leases: open holds with an owning process, process leases, one ledger row per kind and
request, 64-bit token counts in the request log.

Revision ID: 0005_ledger_leases
Revises: 0004_response_format
Create Date: 2025-01-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_ledger_leases"
down_revision: str | Sequence[str] | None = "0004_response_format"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Holds that were open before this revision: a hold row with no release row after it. They get
# no owner, so the first stale-hold reaper gives them back (their processes are long gone).
_OPEN_HOLDS = """
INSERT INTO ledger_holds (request_id, key_id, amount_micros, owner, model, endpoint, created_at)
SELECT h.request_id, h.key_id, -h.amount_micros, NULL, NULL, NULL, h.created_at
FROM ledger h
WHERE h.kind = 'hold' AND h.request_id IS NOT NULL AND NOT EXISTS (
    SELECT 1 FROM ledger r
    WHERE r.request_id = h.request_id AND r.key_id = h.key_id AND r.kind = 'release' AND r.id > h.id
)
"""


def upgrade() -> None:
    # Plain SQLAlchemy types, as in 0001: this file must keep meaning the same schema forever.
    op.create_table(
        "ledger_leases",
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("host", sa.String(200), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("owner", name=op.f("pk_ledger_leases")),
    )
    op.create_table(
        "ledger_holds",
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("amount_micros", sa.BigInteger(), nullable=False),
        sa.Column("owner", sa.String(64), nullable=True),
        sa.Column("model", sa.String(200), nullable=True),
        sa.Column("endpoint", sa.String(300), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["key_id"], ["api_keys.id"], name=op.f("fk_ledger_holds_key_id_api_keys")),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_ledger_holds")),
    )
    op.execute(_OPEN_HOLDS)
    # Earlier code wrote at most one row of each kind per request, so this cannot conflict.
    op.create_index("uq_ledger_request_id_kind", "ledger", ["request_id", "kind"], unique=True)
    op.drop_index(op.f("ix_ledger_request_id"), table_name="ledger")
    # Token counts are the upstream's numbers: 32 bits overflowed on PostgreSQL and stopped the
    # request-log writer. (On SQLite this rebuilds the table; its INTEGER was 64-bit already.)
    with op.batch_alter_table("request_logs") as batch:
        batch.alter_column("input_tokens", existing_type=sa.Integer(), type_=sa.BigInteger())
        batch.alter_column("output_tokens", existing_type=sa.Integer(), type_=sa.BigInteger())


def downgrade() -> None:
    with op.batch_alter_table("request_logs") as batch:
        batch.alter_column("output_tokens", existing_type=sa.BigInteger(), type_=sa.Integer())
        batch.alter_column("input_tokens", existing_type=sa.BigInteger(), type_=sa.Integer())
    op.create_index(op.f("ix_ledger_request_id"), "ledger", ["request_id"], unique=False)
    op.drop_index("uq_ledger_request_id_kind", table_name="ledger")
    op.drop_table("ledger_holds")
    op.drop_table("ledger_leases")
