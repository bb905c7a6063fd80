"""Purging: by age and by id, in the database and in spill files, and through the CLI."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest

import migrations
from core import Exchange
from storage import codec
from storage.database import Database
from storage.inserts import insert_exchanges
from storage.judgments import Judgment, add_judgments
from storage.purge import purge_exchange, purge_older_than
from storage.spill import REJECTED_PREFIX, SpillDir
from tests.storage.factories import T0, simple_exchange
from tests.storage.helpers import count_rows, exchange_ids, spill_records
from understudy.cli import main


async def seed(db: Database, spill_dir: Path) -> dict[str, list[Exchange]]:
    """Old and new exchanges, in the database and in spill and rejected files."""
    old_db = [simple_exchange(-86400 * 40 + i) for i in range(3)]
    new_db = [simple_exchange(i) for i in range(3)]
    old_spill = [simple_exchange(-86400 * 40 + 10 + i) for i in range(2)]
    new_spill = [simple_exchange(10 + i) for i in range(2)]
    async with db.engine.begin() as conn:
        await insert_exchanges(conn, [*old_db, *new_db])
    await add_judgments(
        db,
        [Judgment(e.id, "vllm-llama", "gpt-4o", "v1", "tie") for e in [*old_db, *new_db]],
    )
    spill = SpillDir(spill_dir)
    spill.append([codec.dumps(e) for e in [*old_spill, *new_spill]])
    spill.append([codec.dumps(new_db[0])], prefix=REJECTED_PREFIX)
    return {"old_db": old_db, "new_db": new_db, "old_spill": old_spill, "new_spill": new_spill}


async def test_purge_older_than(database: Database, spill_dir: Path) -> None:
    seeded = await seed(database, spill_dir)
    result = await purge_older_than(database, spill_dir, T0 - timedelta(days=30))
    assert (result.exchanges, result.spilled) == (3, 2)
    assert sorted(await exchange_ids(database)) == sorted(e.id.hex for e in seeded["new_db"])
    assert await count_rows(database, "observations") == 6
    assert await count_rows(database, "judgments") == 3
    assert {r["id"] for r in spill_records(spill_dir)} == {str(e.id) for e in seeded["new_spill"]}


async def test_purge_one_exchange_everywhere(database: Database, spill_dir: Path) -> None:
    seeded = await seed(database, spill_dir)
    target = seeded["new_db"][0]  # in the database and in a rejected file
    SpillDir(spill_dir).append([codec.dumps(target)])  # and in a spill file
    result = await purge_exchange(database, spill_dir, target.id)
    assert (result.exchanges, result.spilled) == (1, 2)
    assert target.id.hex not in await exchange_ids(database)
    assert await count_rows(database, "exchanges") == 5
    everything = spill_records(spill_dir) + spill_records(spill_dir, REJECTED_PREFIX)
    assert str(target.id) not in {r["id"] for r in everything}
    assert len(everything) == 4
    assert not list(spill_dir.glob(f"{REJECTED_PREFIX}*"))  # emptied files are removed

    again = await purge_exchange(database, spill_dir, target.id)
    assert (again.exchanges, again.spilled) == (0, 0)


def test_purge_cli(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    spill_dir = tmp_path / "spill"
    monkeypatch.setenv("UNDERSTUDY_DATABASE_URL", db_url)
    monkeypatch.setenv("UNDERSTUDY_STORAGE__SPILL_DIR", str(spill_dir))

    async def prepare() -> dict[str, list[Exchange]]:
        await migrations.upgrade(db_url)
        async with Database(db_url) as db:
            return await seed(db, spill_dir)

    seeded = asyncio.run(prepare())
    # T0 is in the past: everything seeded is older than one day.
    target = seeded["new_spill"][0]
    assert main(["purge", "--exchange", str(target.id)]) == 0
    assert "1 from spill files" in capsys.readouterr().out
    assert str(target.id) not in {r["id"] for r in spill_records(spill_dir)}

    assert main(["purge", "--exchange", "not-a-uuid"]) == 2
    assert main(["purge"]) == 2
    assert "UNDERSTUDY_STORAGE__RETENTION" in capsys.readouterr().err

    monkeypatch.setenv("UNDERSTUDY_STORAGE__RETENTION", "1d")
    assert main(["purge"]) == 0
    out = capsys.readouterr().out
    assert "6 from the database" in out

    async def remaining() -> int:
        async with Database(db_url) as db:
            return await count_rows(db, "exchanges")

    assert asyncio.run(remaining()) == 0
    assert spill_records(spill_dir) == []
