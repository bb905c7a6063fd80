"""Rollout flags as versioned rows, and the rollout audit log; both append-only.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APPEND_ONLY = ("rollout_flags", "rollout_audit")

# A change is a new row; history is never rewritten, whoever holds a connection.
_PG_FUNCTION = """
CREATE FUNCTION understudy_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END
$$
"""


def _forbid_changes(table: str) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION understudy_append_only()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION understudy_append_only()"
        )
        return
    for event in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER {table}_no_{event.lower()} BEFORE {event} ON {table} "
            f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
        )


def upgrade() -> None:
    op.create_table(
        "rollout_flags",
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("route", sa.String(length=32), nullable=True),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("candidate", sa.String(), nullable=True),
        sa.Column("percent", sa.Float(), nullable=False),
        sa.Column("shadow_rate", sa.Float(), nullable=False),
        sa.Column("noise_rate", sa.Float(), nullable=False),
        sa.Column("stage", sa.String(), nullable=True),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("killed", sa.Boolean(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "percent >= 0 AND percent <= 100", name=op.f("ck_rollout_flags_percent")
        ),
        sa.CheckConstraint("version > 0", name=op.f("ck_rollout_flags_version")),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_rollout_flags")),
    )
    op.create_index(
        op.f("ix_rollout_flags_route_version"), "rollout_flags", ["route", "version"]
    )

    op.create_table(
        "rollout_audit",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("route", sa.String(length=32), nullable=True),
        sa.Column("flag_version", sa.Integer(), nullable=True),
        sa.Column("before", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("after", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("verdict", sa.JSON(none_as_null=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollout_audit")),
    )
    op.create_index(op.f("ix_rollout_audit_at"), "rollout_audit", ["at"])

    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_FUNCTION)
    for table in APPEND_ONLY:
        _forbid_changes(table)


def downgrade() -> None:
    op.drop_table("rollout_audit")
    op.drop_table("rollout_flags")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION understudy_append_only()")
