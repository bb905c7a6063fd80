"""Replay of stored requests: runs, and one result per selected exchange of a run.

Results cascade with their original exchange (a purged exchange leaves no replay of
it behind) and with their run. Live reports never read these tables.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "replay_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("candidate", sa.String(), nullable=False),
        sa.Column("target", sa.String(), nullable=False),
        sa.Column("selection_key", sa.String(length=64), nullable=False),
        sa.Column("parameters", sa.JSON(none_as_null=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("selected", sa.Integer(), nullable=False),
        sa.Column("skipped_no_prompt", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('running', 'stopped', 'finished')", name=op.f("ck_replay_runs_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_replay_runs")),
    )
    op.create_index(
        op.f("ix_replay_runs_selection_key_created_at"),
        "replay_runs",
        ["selection_key", "created_at"],
    )
    op.create_table(
        "replay_results",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("exchange_id", sa.Uuid(), nullable=False),
        sa.Column("original_created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("replayed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("upstream", sa.String(), nullable=True),
        sa.Column("model", sa.String(), nullable=True),
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
        sa.Column("truncated", sa.Boolean(), nullable=True),
        sa.Column("embedding_dims", sa.Integer(), nullable=True),
        sa.Column("judge_model", sa.String(), nullable=True),
        sa.Column("judge_prompt_version", sa.String(), nullable=True),
        sa.Column("judge_outcome", sa.String(length=16), nullable=True),
        sa.Column("judged_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "judge_outcome IN ('candidate', 'primary', 'tie')",
            name=op.f("ck_replay_results_judge_outcome"),
        ),
        sa.ForeignKeyConstraint(
            ["exchange_id"],
            ["exchanges.id"],
            name=op.f("fk_replay_results_exchange_id_exchanges"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["replay_runs.id"],
            name=op.f("fk_replay_results_run_id_replay_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", "exchange_id", name=op.f("pk_replay_results")),
    )
    op.create_index(op.f("ix_replay_results_exchange_id"), "replay_results", ["exchange_id"])
    op.create_index(
        op.f("ix_replay_results_run_id_replayed_at"), "replay_results", ["run_id", "replayed_at"]
    )


def downgrade() -> None:
    op.drop_table("replay_results")
    op.drop_table("replay_runs")
