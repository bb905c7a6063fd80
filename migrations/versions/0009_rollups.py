"""Rollups the overview reads: calls per time period by arm and duration bin, and the
primary-candidate pairs' token sums, kept as exchanges are written and counted here from
the exchanges already stored.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storage.rollups import rebuild_rollups

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "activity_rollups",
        sa.Column("grain_s", sa.Integer(), nullable=False),
        sa.Column("period", sa.Integer(), nullable=False),
        sa.Column("route", sa.String(length=32), nullable=False),
        sa.Column("candidate", sa.String(), nullable=False),
        sa.Column("upstream", sa.String(), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("fallback", sa.Integer(), nullable=False),
        sa.Column("measure", sa.String(length=16), nullable=False),
        sa.Column("bin", sa.Integer(), nullable=False),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "grain_s",
            "period",
            "route",
            "candidate",
            "upstream",
            "role",
            "failed",
            "fallback",
            "measure",
            "bin",
            name=op.f("pk_activity_rollups"),
        ),
    )
    op.create_table(
        "pair_rollups",
        sa.Column("grain_s", sa.Integer(), nullable=False),
        sa.Column("period", sa.Integer(), nullable=False),
        sa.Column("route", sa.String(length=32), nullable=False),
        sa.Column("candidate", sa.String(), nullable=False),
        sa.Column("candidate_prompt_known", sa.Integer(), nullable=False),
        sa.Column("pairs", sa.Integer(), nullable=False),
        sa.Column("first_s", sa.Float(), nullable=False),
        sa.Column("last_s", sa.Float(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        *(
            sa.Column(f"{arm}_{tokens}", sa.Float(), nullable=False)
            for arm in ("primary", "candidate")
            for tokens in ("prompt", "cached", "uncached", "completion")
        ),
        sa.PrimaryKeyConstraint(
            "grain_s",
            "period",
            "route",
            "candidate",
            "candidate_prompt_known",
            name=op.f("pk_pair_rollups"),
        ),
    )
    # Counted by the same statements the writer runs, over every stored exchange.
    rebuild_rollups(op.get_bind())


def downgrade() -> None:
    op.drop_table("pair_rollups")
    op.drop_table("activity_rollups")
