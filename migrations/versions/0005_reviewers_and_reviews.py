"""Blind pairwise review: reviewers, their web UI sessions, and their reviews.

Exchanges get an index on (route, created_at) for the review queue. Reviews cascade
with their exchange (a purged exchange leaves no review behind);
a reviewer is never deleted, only marked removed, so their reviews stay counted.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "reviewers",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.String(), nullable=True),
        sa.Column("invite_hash", sa.String(length=64), nullable=True),
        sa.Column("invite_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reviewers")),
        sa.UniqueConstraint("invite_hash", name=op.f("uq_reviewers_invite_hash")),
        sa.UniqueConstraint("name", name=op.f("uq_reviewers_name")),
    )
    op.create_table(
        "ui_sessions",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("admin_name", sa.String(length=64), nullable=True),
        sa.Column("reviewer_id", sa.Integer(), nullable=True),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("role IN ('admin', 'reviewer')", name=op.f("ck_ui_sessions_role")),
        sa.ForeignKeyConstraint(
            ["reviewer_id"],
            ["reviewers.id"],
            name=op.f("fk_ui_sessions_reviewer_id_reviewers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_ui_sessions")),
    )
    op.create_index(op.f("ix_ui_sessions_expires_at"), "ui_sessions", ["expires_at"])
    op.create_index(op.f("ix_ui_sessions_reviewer_id"), "ui_sessions", ["reviewer_id"])
    op.create_table(
        "reviews",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("item_token", sa.String(length=64), nullable=False),
        sa.Column("reviewer_id", sa.Integer(), nullable=False),
        sa.Column("exchange_id", sa.Uuid(), nullable=False),
        sa.Column("candidate", sa.String(), nullable=False),
        sa.Column("route", sa.String(length=32), nullable=False),
        sa.Column("shown_order", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("time_taken_ms", sa.Float(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("shown_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "outcome IN ('candidate', 'primary', 'tie', 'both_bad', 'skipped')",
            name=op.f("ck_reviews_outcome"),
        ),
        sa.CheckConstraint(
            "shown_order IN ('candidate_first', 'primary_first')",
            name=op.f("ck_reviews_shown_order"),
        ),
        sa.ForeignKeyConstraint(
            ["exchange_id"],
            ["exchanges.id"],
            name=op.f("fk_reviews_exchange_id_exchanges"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["reviewer_id"], ["reviewers.id"], name=op.f("fk_reviews_reviewer_id_reviewers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reviews")),
        sa.UniqueConstraint("item_token", name=op.f("uq_reviews_item_token")),
        sa.UniqueConstraint(
            "reviewer_id", "exchange_id", name=op.f("uq_reviews_reviewer_id_exchange_id")
        ),
    )
    op.create_index(op.f("ix_reviews_exchange_id_outcome"), "reviews", ["exchange_id", "outcome"])
    op.create_index(
        op.f("ix_reviews_reviewer_id_decided_at"), "reviews", ["reviewer_id", "decided_at"]
    )
    # The review queue walks one route's exchanges newest first and stops at a page.
    op.create_index(
        op.f("ix_exchanges_route_created_at"), "exchanges", ["route", "created_at"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_exchanges_route_created_at"), table_name="exchanges")
    op.drop_table("reviews")
    op.drop_table("ui_sessions")
    op.drop_table("reviewers")
