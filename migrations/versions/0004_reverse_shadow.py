"""The reverse shadow: a rollout's share of candidate-served requests also sent to the primary,
and whether an exchange's routing decision asked for it.

Rows written before this revision never asked for one: both columns default to off.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "rollout_flags",
        sa.Column("reverse_shadow_rate", sa.Float(), nullable=False, server_default="0"),
    )
    op.add_column(
        "exchanges",
        sa.Column("reverse_shadow", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    with op.batch_alter_table("exchanges") as batch:
        batch.drop_column("reverse_shadow")
    with op.batch_alter_table("rollout_flags") as batch:
        batch.drop_column("reverse_shadow_rate")
