"""The Responses API: which upstream holds each response (so a follow-up naming it in
``previous_response_id`` reaches it from any replica), and the conversations candidates
reached through translation answered (such a server keeps none itself).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "response_owners",
        sa.Column("response_id", sa.String(length=128), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("candidate", sa.String(length=64), nullable=True),
        sa.Column("twin_id", sa.String(length=128), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("response_id", name=op.f("pk_response_owners")),
    )
    op.create_index(op.f("ix_response_owners_expires_at"), "response_owners", ["expires_at"])
    op.create_table(
        "translated_turns",
        sa.Column("response_id", sa.String(length=128), nullable=False),
        sa.Column("upstream", sa.String(length=64), nullable=False),
        sa.Column("messages", sa.JSON(none_as_null=True), nullable=False),
        sa.Column("response", sa.JSON(none_as_null=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("response_id", name=op.f("pk_translated_turns")),
    )
    op.create_index(op.f("ix_translated_turns_expires_at"), "translated_turns", ["expires_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_translated_turns_expires_at"), table_name="translated_turns")
    op.drop_table("translated_turns")
    op.drop_index(op.f("ix_response_owners_expires_at"), table_name="response_owners")
    op.drop_table("response_owners")
