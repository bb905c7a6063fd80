"""Alembic owns the schema: up, down and up again on both databases, and no drift."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

import migrations
from core import Exchange
from storage.database import Database
from storage.errors import SchemaOutOfDate
from storage.models import metadata
from storage.rows import exchange_row, observation_rows
from tests.storage.factories import full_exchange
from tests.storage.helpers import count_rows
from tests.storage.test_roundtrip import store

TABLES = {
    "exchanges",
    "observations",
    "judgments",
    "rollout_flags",
    "rollout_audit",
    "reviewers",
    "ui_sessions",
    "reviews",
    "replay_runs",
    "replay_results",
    "response_owners",
    "translated_turns",
    "activity_rollups",
    "pair_rollups",
}


async def tables(url: str) -> set[str]:
    async with Database(url) as db, db.engine.connect() as conn:
        names = await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))
    return names - {"alembic_version"}


async def test_up_down_up(db_url: str) -> None:
    head = migrations.head_revision()
    assert await migrations.current(db_url) is None
    assert not await migrations.is_up_to_date(db_url)

    await migrations.upgrade(db_url)
    assert await migrations.current(db_url) == head
    assert await migrations.is_up_to_date(db_url)
    assert await tables(db_url) == TABLES

    await migrations.downgrade(db_url, "base")
    assert await migrations.current(db_url) is None
    assert await tables(db_url) == set()

    await migrations.upgrade(db_url, head)
    assert await tables(db_url) == TABLES
    async with Database(db_url) as db:
        await store(db, full_exchange())
        assert await count_rows(db, "observations") == 3


async def test_models_and_migrations_agree(database: Database) -> None:
    def diff(sync: Connection) -> list[object]:
        context = MigrationContext.configure(sync, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))

    async with database.engine.connect() as conn:
        assert await conn.run_sync(diff) == []


async def test_works_from_any_directory(db_url: str, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    before = Path.cwd()
    os.chdir(elsewhere)
    try:
        await migrations.upgrade(db_url)
        assert await migrations.is_up_to_date(db_url)
    finally:
        os.chdir(before)


async def test_ensure_schema(db_url: str) -> None:
    with pytest.raises(SchemaOutOfDate) as caught:
        await migrations.ensure_schema(db_url, auto_upgrade=False)
    message = str(caught.value)
    assert "database is at revision none" in message
    assert f"code needs {migrations.head_revision()}" in message
    assert "understudy db upgrade" in message

    await migrations.ensure_schema(db_url, auto_upgrade=True)
    assert await migrations.is_up_to_date(db_url)
    await migrations.ensure_schema(db_url, auto_upgrade=False)  # current: no error


async def test_ensure_schema_refuses_an_unknown_revision(database: Database) -> None:
    from sqlalchemy import text

    async with database.engine.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = 'fffffffffff'"))
    url = database.url.render_as_string(hide_password=False)
    with pytest.raises(SchemaOutOfDate, match="does not know"):
        await migrations.ensure_schema(url, auto_upgrade=True)


async def _store_at_old_revision(db: Database, exchange: Exchange) -> None:
    """Insert what the schema of an older revision has room for: later columns are left out."""
    async with db.engine.begin() as conn:
        for name, rows in (
            ("exchanges", [exchange_row(exchange)]),
            ("observations", observation_rows(exchange)),
        ):
            present = await conn.run_sync(
                lambda sync, n=name: {c["name"] for c in inspect(sync).get_columns(n)}
            )
            await conn.execute(
                sa.insert(metadata.tables[name]),
                [{k: v for k, v in r.items() if k in present} for r in rows],
            )


def _judge_table(name: str) -> sa.TableClause:
    return sa.table(
        name,
        sa.column("id", sa.Uuid()),
        sa.column("exchange_id", sa.Uuid()),
        sa.column("candidate", sa.String()),
        sa.column("judge_model", sa.String()),
        sa.column("prompt_version", sa.String()),
        sa.column("outcome", sa.String()),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )


async def _indexes(db: Database, table: str) -> set[str]:
    async with db.engine.connect() as conn:
        found = await conn.run_sync(lambda sync: inspect(sync).get_indexes(table))
    return {str(i["name"]) for i in found}


async def _judged(db: Database, table: str) -> list[tuple[str, str]]:
    t = _judge_table(table)
    async with db.engine.connect() as conn:
        rows = (await conn.execute(sa.select(t.c.id, t.c.outcome).order_by(t.c.outcome))).all()
    return [(str(i), str(o)) for i, o in rows]


async def test_0003_renames_judgements_to_judgments_and_back_keeping_rows(db_url: str) -> None:
    from tests.storage.factories import T0

    exchange = full_exchange()
    await migrations.upgrade(db_url, "0002")
    async with Database(db_url) as db:
        await _store_at_old_revision(db, exchange)
        ids = [uuid.uuid4(), uuid.uuid4()]
        rows = [
            {"id": ids[0], "outcome": "candidate"},
            {"id": ids[1], "outcome": "tie"},
        ]
        common = {
            "exchange_id": exchange.id,
            "candidate": "vllm-llama",
            "judge_model": "gpt-4o",
            "prompt_version": "v1",
            "created_at": T0,
        }
        async with db.engine.begin() as conn:
            await conn.execute(sa.insert(_judge_table("judgements")), [r | common for r in rows])
        assert "ix_exchanges_flag_version" not in await _indexes(db, "exchanges")
    expected = [(str(ids[0]), "candidate"), (str(ids[1]), "tie")]

    await migrations.upgrade(db_url, "0003")
    assert "judgements" not in await tables(db_url)
    async with Database(db_url) as db:
        assert await _judged(db, "judgments") == expected
        assert "ix_exchanges_flag_version" in await _indexes(db, "exchanges")
        assert {"ix_judgments_candidate_created_at", "ix_judgments_exchange_id"} <= (
            await _indexes(db, "judgments")
        )
        with pytest.raises(IntegrityError):  # the outcome check came along
            async with db.engine.begin() as conn:
                bad = {"id": uuid.uuid4(), "outcome": "win"} | common
                await conn.execute(sa.insert(_judge_table("judgments")), [bad])

    await migrations.downgrade(db_url, "0002")
    assert "judgments" not in await tables(db_url)
    async with Database(db_url) as db:
        assert await _judged(db, "judgements") == expected
        assert "ix_exchanges_flag_version" not in await _indexes(db, "exchanges")
        assert "ix_judgements_exchange_id" in await _indexes(db, "judgements")
