"""Initial schema: exchanges, observations, judgements.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "exchanges",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("route", sa.String(length=32), nullable=False),
        sa.Column("requested_model", sa.String(), nullable=False),
        sa.Column("subject_hash", sa.String(), nullable=False),
        sa.Column("stream", sa.Boolean(), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("percent", sa.Float(), nullable=False),
        sa.Column("flag_version", sa.Integer(), nullable=False),
        sa.Column("bucket", sa.Integer(), nullable=False),
        sa.Column("decision_served", sa.String(), nullable=False),
        sa.Column("served_is_candidate", sa.Boolean(), nullable=False),
        sa.Column("decision_shadow", sa.String(), nullable=True),
        sa.Column("noise", sa.Boolean(), nullable=False),
        sa.Column("served_by", sa.String(), nullable=False),
        sa.Column("fallback", sa.Boolean(), nullable=False),
        sa.Column("candidate", sa.String(), nullable=True),
        sa.Column("request", sa.JSON(none_as_null=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exchanges")),
    )
    op.create_index(op.f("ix_exchanges_candidate"), "exchanges", ["candidate"])
    op.create_index(op.f("ix_exchanges_created_at"), "exchanges", ["created_at"])
    op.create_index(op.f("ix_exchanges_route"), "exchanges", ["route"])

    op.create_table(
        "observations",
        sa.Column("exchange_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("upstream", sa.String(), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("model", sa.String(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("error_kind", sa.String(length=32), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("ttft_ms", sa.Float(), nullable=True),
        sa.Column("prompt_tokens", sa.Integer(), nullable=True),
        sa.Column("completion_tokens", sa.Integer(), nullable=True),
        sa.Column("cached_tokens", sa.Integer(), nullable=True),
        sa.Column("finish_reason", sa.String(), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("tool_calls", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("truncated", sa.Boolean(), nullable=False),
        sa.Column("embedding_dims", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["exchange_id"],
            ["exchanges.id"],
            name=op.f("fk_observations_exchange_id_exchanges"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("exchange_id", "position", name=op.f("pk_observations")),
    )
    op.create_index(op.f("ix_observations_role"), "observations", ["role"])

    op.create_table(
        "judgements",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("exchange_id", sa.Uuid(), nullable=False),
        sa.Column("candidate", sa.String(), nullable=False),
        sa.Column("judge_model", sa.String(), nullable=False),
        sa.Column("prompt_version", sa.String(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("detail", sa.JSON(none_as_null=True), nullable=True),
        sa.CheckConstraint(
            "outcome IN ('candidate', 'primary', 'tie')", name=op.f("ck_judgements_outcome")
        ),
        sa.ForeignKeyConstraint(
            ["exchange_id"],
            ["exchanges.id"],
            name=op.f("fk_judgements_exchange_id_exchanges"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_judgements")),
    )
    op.create_index(
        op.f("ix_judgements_candidate_created_at"), "judgements", ["candidate", "created_at"]
    )
    op.create_index(op.f("ix_judgements_exchange_id"), "judgements", ["exchange_id"])


def downgrade() -> None:
    op.drop_table("judgements")
    op.drop_table("observations")
    op.drop_table("exchanges")
