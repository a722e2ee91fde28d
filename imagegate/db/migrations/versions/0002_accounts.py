"""accounts: key groups, quotas and balances, the money ledger, model price overrides.

Revision ID: 0002_accounts
Revises: 0001
Create Date: 2025-01-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_accounts"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Plain SQLAlchemy types, as in 0001: this file must keep meaning the same schema forever.
_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "groups",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("price_multiplier", sa.String(32), server_default="1", nullable=False),
        sa.Column("models", sa.JSON(), nullable=True),
        sa.Column("rpm", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_groups")),
        sa.UniqueConstraint("name", name=op.f("uq_groups_name")),
    )
    # Batch mode: SQLite cannot add a foreign key or a CHECK to an existing table, so Alembic
    # rebuilds it there; on PostgreSQL these are plain ALTER TABLE statements.
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("group_id", sa.String(32), nullable=True))
        batch.add_column(sa.Column("quota_micros", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("balance_micros", sa.BigInteger(), server_default="0", nullable=False))
        batch.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("rpm", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("ip_allowlist", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("enabled", sa.Boolean(), server_default=sa.true(), nullable=False))
        batch.create_foreign_key(op.f("fk_api_keys_group_id_groups"), "groups", ["group_id"], ["id"])
        batch.create_check_constraint(op.f("ck_api_keys_balance_not_negative"), "balance_micros >= 0")
        batch.create_index(op.f("ix_api_keys_group_id"), ["group_id"], unique=False)
    op.create_table(
        "ledger",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("amount_micros", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["key_id"], ["api_keys.id"], name=op.f("fk_ledger_key_id_api_keys")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger")),
    )
    op.create_index(op.f("ix_ledger_key_id"), "ledger", ["key_id"], unique=False)
    op.create_index(op.f("ix_ledger_request_id"), "ledger", ["request_id"], unique=False)
    op.create_table(
        "model_prices",
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("price", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("model", name=op.f("pk_model_prices")),
    )


def downgrade() -> None:
    op.drop_table("model_prices")
    op.drop_index(op.f("ix_ledger_request_id"), table_name="ledger")
    op.drop_index(op.f("ix_ledger_key_id"), table_name="ledger")
    op.drop_table("ledger")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_index(op.f("ix_api_keys_group_id"))
        batch.drop_constraint(op.f("ck_api_keys_balance_not_negative"), type_="check")
        batch.drop_constraint(op.f("fk_api_keys_group_id_groups"), type_="foreignkey")
        for column in (
            "enabled",
            "ip_allowlist",
            "rpm",
            "expires_at",
            "balance_micros",
            "quota_micros",
            "group_id",
        ):
            batch.drop_column(column)
    op.drop_table("groups")
