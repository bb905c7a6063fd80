"""Index exchanges by flag version (a rollout stage's window); the judge's table is "judgments".

The rename builds the new table with its own constraint names, copies every
row and drops the old one: SQLite cannot rename constraints in place, and one
way for both databases keeps upgrade and downgrade alike.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = (
    "id",
    "exchange_id",
    "candidate",
    "judge_model",
    "prompt_version",
    "outcome",
    "created_at",
    "detail",
)


def _create_judge_table(name: str) -> None:
    op.create_table(
        name,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("exchange_id", sa.Uuid(), nullable=False),
        sa.Column("candidate", sa.String(), nullable=False),
        sa.Column("judge_model", sa.String(), nullable=False),
        sa.Column("prompt_version", sa.String(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("detail", sa.JSON(none_as_null=True), nullable=True),
        sa.CheckConstraint(
            "outcome IN ('candidate', 'primary', 'tie')", name=op.f(f"ck_{name}_outcome")
        ),
        sa.ForeignKeyConstraint(
            ["exchange_id"],
            ["exchanges.id"],
            name=op.f(f"fk_{name}_exchange_id_exchanges"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{name}")),
    )
    op.create_index(op.f(f"ix_{name}_candidate_created_at"), name, ["candidate", "created_at"])
    op.create_index(op.f(f"ix_{name}_exchange_id"), name, ["exchange_id"])


def _move_judge_table(old: str, new: str) -> None:
    _create_judge_table(new)
    columns = ", ".join(_COLUMNS)
    op.execute(f"INSERT INTO {new} ({columns}) SELECT {columns} FROM {old}")
    op.drop_table(old)


def upgrade() -> None:
    op.create_index(op.f("ix_exchanges_flag_version"), "exchanges", ["flag_version"])
    _move_judge_table("judgements", "judgments")


def downgrade() -> None:
    _move_judge_table("judgments", "judgements")
    op.drop_index(op.f("ix_exchanges_flag_version"), table_name="exchanges")
