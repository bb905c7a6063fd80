"""The rollups the writer keeps equal what counting every stored row gives, whatever
arrived twice, late or out of order, and whatever a purge took away."""

from __future__ import annotations

import math
import random
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from core import Route
from migrations import ensure_schema
from storage.database import Database
from storage.purge import purge_exchange, purge_older_than
from storage.rollups import (
    ACTIVITY,
    NO_BIN,
    PAIRS,
    grain_for,
    id_set,
    rebuild_rollups,
    rollup_statements,
)
from storage.ui_bins import LAST_BIN
from storage.window import ExchangeWindow
from tests.storage.ui_data import CANDIDATE, T0, build_traffic, store

# What a subtraction leaves as it was: the first and last pair times of a period.
UNSUBTRACTED = {"first_s", "last_s"}


async def _contents(db: Database, *, all_columns: bool = True) -> dict[str, set[tuple[Any, ...]]]:
    def columns(table: Any) -> list[Any]:
        return [c for c in table.columns if all_columns or c.name not in UNSUBTRACTED]

    async with db.engine.connect() as conn:
        return {
            table.name: {tuple(row) for row in await conn.execute(select(*columns(table)))}
            for table in (ACTIVITY, PAIRS)
        }


async def _recounted(db: Database, *, all_columns: bool = True) -> dict[str, set[tuple[Any, ...]]]:
    """The rollups as a fresh count of every row gives them (then put back as they were
    found is not needed: each test ends here)."""
    async with db.engine.begin() as conn:
        await conn.run_sync(rebuild_rollups)
    return await _contents(db, all_columns=all_columns)


async def test_batches_out_of_order_and_twice_add_up_to_a_fresh_count(database: Database) -> None:
    exchanges = build_traffic(600, seed=7)
    batches = [exchanges[i : i + 37] for i in range(0, len(exchanges), 37)]
    random.Random(3).shuffle(batches)  # a replayed spill lands after newer traffic
    for batch in batches:
        await store(database, batch)
    await store(database, batches[0] + batches[3])  # a batch written again adds nothing
    kept = await _contents(database)
    assert len(kept["activity_rollups"]) > 100 and len(kept["pair_rollups"]) > 10
    assert kept == await _recounted(database)


async def test_a_purge_takes_its_exchanges_out_of_the_rollups(
    database: Database, tmp_path: Path
) -> None:
    exchanges = build_traffic(500, seed=11)
    await store(database, exchanges)
    # A cutoff inside a minute: the periods it splits keep only what is after it.
    await purge_older_than(database, tmp_path, T0 + timedelta(minutes=47, seconds=13))
    await purge_exchange(database, tmp_path, exchanges[-1].id)
    kept = await _contents(database, all_columns=False)
    assert kept == await _recounted(database, all_columns=False)
    assert all(row[-1] > 0 for row in kept["activity_rollups"])  # nothing counting nothing


async def test_purging_everything_leaves_no_rollup(database: Database, tmp_path: Path) -> None:
    await store(database, build_traffic(200, seed=5))
    await purge_older_than(database, tmp_path, T0 + timedelta(days=30))
    assert await _contents(database) == {"activity_rollups": set(), "pair_rollups": set()}


@pytest.mark.parametrize(
    ("window", "bucket_s", "grain"),
    [
        (ExchangeWindow(CANDIDATE), None, 86_400),
        (ExchangeWindow(CANDIDATE, since=T0), 3600, 3600),
        (ExchangeWindow(CANDIDATE, since=T0 + timedelta(minutes=15)), 3600, 900),
        (ExchangeWindow(CANDIDATE, since=T0, route=Route.CHAT), 300, 60),
    ],
)
def test_a_window_reads_the_coarsest_grain_that_fits(
    window: ExchangeWindow, bucket_s: int | None, grain: int
) -> None:
    assert grain_for(window, bucket_s) == grain


@pytest.mark.parametrize(
    "window",
    [
        ExchangeWindow(CANDIDATE, since=T0 + timedelta(seconds=30)),
        ExchangeWindow(CANDIDATE, until=T0 + timedelta(microseconds=1)),
        ExchangeWindow(CANDIDATE, first_flag_version=3),
    ],
)
def test_a_window_no_grain_fits_is_refused(window: ExchangeWindow) -> None:
    with pytest.raises(ValueError):
        grain_for(window, 60)


async def test_a_duration_too_long_to_bin_lands_in_the_last_bin(database: Database) -> None:
    exchanges = build_traffic(40, seed=2)
    endless = [
        replace(
            e,
            observations=tuple(
                replace(o, latency_ms=math.inf, ttft_ms=math.inf) for o in e.observations
            ),
        )
        for e in exchanges
    ]
    await store(database, endless)
    async with database.engine.connect() as conn:
        bins = set((await conn.execute(select(ACTIVITY.c.bin).distinct())).scalars())
    assert bins <= {LAST_BIN, NO_BIN} and LAST_BIN in bins
    assert await _contents(database) == await _recounted(database)


async def test_adding_a_batch_looks_its_arms_up_by_exchange_id(tmp_path: Path) -> None:
    """On SQLite without statistics, a role index would make every batch scan all stored
    arms of a role: writes would slow down as the database grows."""
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/plan.db")
    await ensure_schema(db.url, auto_upgrade=True)
    try:
        traffic = build_traffic(200, seed=5)
        await store(db, traffic)
        ids = id_set("sqlite", [e.id for e in traffic[:20]])
        async with db.engine.connect() as conn:
            for statement in rollup_statements("sqlite", [], ids=ids):
                compiled = statement.compile(
                    dialect=conn.dialect, compile_kwargs={"literal_binds": True}
                )
                sql = str(compiled).replace("%", "%%")
                plan = [row[-1] for row in await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql)]
                searches = [step for step in plan if step.startswith(("SEARCH", "SCAN"))]
                assert not any("role" in step for step in searches), plan
                assert any(s.startswith("SEARCH exchanges USING INDEX") for s in searches), plan
    finally:
        await db.dispose()
