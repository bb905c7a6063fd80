"""Batches of every size are written with a handful of SQL texts, each prepared once.

A driver keeps one prepared statement per distinct text. Before, an INSERT of n
exchanges and the rollups' ``IN`` of n ids had a text per n: the recorder's caches
filled with near-copies, and it kept preparing statements anew.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import event, select

from storage.database import Database
from storage.rollups import ACTIVITY, PAIRS, rebuild_rollups
from storage.shapes import power_of_two_chunks
from tests.storage.ui_data import build_traffic, store


def test_chunks_are_powers_of_two_that_cover_the_items_in_order() -> None:
    for n in range(140):
        items = list(range(n))
        chunks = list(power_of_two_chunks(items, 64))
        assert [x for chunk in chunks for x in chunk] == items, n
        assert all(len(c) <= 64 and len(c) & (len(c) - 1) == 0 for c in chunks), n
        # Greedy: at most one chunk of each size below the largest, so few statements.
        below = [len(c) for c in chunks if len(c) < 64]
        assert len(below) == len(set(below)), n


@pytest.mark.parametrize("most", [0, 3, 48])
def test_the_largest_chunk_must_be_a_power_of_two(most: int) -> None:
    with pytest.raises(ValueError, match="power of two"):
        list(power_of_two_chunks([1, 2, 3], most))


def _shape(statement: str) -> str:
    """Which of the writer's statements a SQL text is."""
    for table in ("activity_rollups", "pair_rollups", "observations", "exchanges"):
        if f"INSERT INTO {table}" in statement:
            return table
    return statement.split(None, 1)[0]


async def test_batches_of_every_size_use_few_statement_texts(database: Database) -> None:
    texts: set[str] = set()

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        texts.add(statement)

    traffic = build_traffic(2_000, seed=11)
    sizes = list(range(1, 61))
    random.Random(5).shuffle(sizes)
    event.listen(database.engine.sync_engine, "before_cursor_execute", seen)
    try:
        start = 0
        for size in sizes:  # 1 to 60 exchanges: every size the writer's timer cuts
            await store(database, traffic[start : start + size])
            start += size
    finally:
        event.remove(database.engine.sync_engine, "before_cursor_execute", seen)
    shapes = Counter(_shape(t) for t in texts)
    # 1, 2, 4, ..., 32 rows; the observations go one row per execution.
    assert shapes["exchanges"] <= 6, shapes
    assert shapes["observations"] == 1, shapes
    # The batch's ids are one parameter, whatever their number.
    assert shapes["activity_rollups"] == 1 and shapes["pair_rollups"] == 1, shapes

    # What was added batch by batch is what a fresh count gives.
    async with database.engine.connect() as conn:
        added = {t.name: set(await conn.execute(select(t))) for t in (ACTIVITY, PAIRS)}
    async with database.engine.begin() as conn:
        await conn.run_sync(rebuild_rollups)
    async with database.engine.connect() as conn:
        recounted = {t.name: set(await conn.execute(select(t))) for t in (ACTIVITY, PAIRS)}
    assert added["activity_rollups"] == recounted["activity_rollups"]
    # A subtraction-free history: pair first and last times agree too.
    assert added["pair_rollups"] == recounted["pair_rollups"]
