"""Alembic owns the schema: up, down and up again on both databases, and no drift."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

import migrations
from storage.database import Database
from storage.errors import SchemaOutOfDate
from storage.models import metadata
from tests.storage.factories import full_exchange
from tests.storage.helpers import count_rows
from tests.storage.test_roundtrip import store

TABLES = {"exchanges", "observations", "judgements", "rollout_flags", "rollout_audit"}


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
