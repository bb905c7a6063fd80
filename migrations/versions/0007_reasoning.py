"""Reasoning models: an answer's reasoning kept apart from its text, its token count, and the
time to the first token of any kind (reasoning included) beside ``ttft_ms``, which stays the
time to the first token of the visible answer.

Both tables that hold an arm's observation columns (``observations`` and ``replay_results``)
get the same three columns. Rows written before this revision have no reasoning: NULL.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = ("observations", "replay_results")


def upgrade() -> None:
    for table in _TABLES:
        op.add_column(table, sa.Column("ttft_any_ms", sa.Float(), nullable=True))
        op.add_column(table, sa.Column("reasoning_tokens", sa.Integer(), nullable=True))
        op.add_column(table, sa.Column("reasoning_text", sa.Text(), nullable=True))


def downgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("reasoning_text")
            batch.drop_column("reasoning_tokens")
            batch.drop_column("ttft_any_ms")
