"""The overview memo gives what a fresh count gives, however the data moved in between."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, event

from storage.database import Database
from storage.report_sql import EXCHANGES
from storage.ui_memo import OverviewAggregates, OverviewMemo, overview_aggregates
from storage.window import ExchangeWindow
from tests.storage.ui_data import CANDIDATE, SPAN_S, T0, build_traffic, store

BUCKET_S = 900


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    """The SQL statements the engine sends while inside the block."""
    sent: list[str] = []

    def record(*args: Any) -> None:
        sent.append(args[2])

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)


async def _fresh(db: Database, window: ExchangeWindow) -> OverviewAggregates:
    return await overview_aggregates(db, window, bucket_s=BUCKET_S, candidate_prompt_needed=True)


async def _memo(
    memo: OverviewMemo, db: Database, window: ExchangeWindow, now: datetime
) -> OverviewAggregates:
    return await memo.aggregates(
        db, window, bucket_s=BUCKET_S, candidate_prompt_needed=True, now=now
    )


def _later(seed: int, n: int, start: datetime) -> list[Any]:
    return [
        dataclasses.replace(e, created_at=start + (e.created_at - T0))
        for e in build_traffic(n, seed=seed, span_s=1800)
    ]


async def test_the_memo_counts_what_a_fresh_count_counts_as_data_moves(
    database: Database,
) -> None:
    await store(database, build_traffic(600, seed=21))
    window = ExchangeWindow(candidate=CANDIDATE)
    memo = OverviewMemo(settle_s=120, recheck_s=0)
    # Settled time ends at 2:48, inside the 2:45 to 3:00 bucket: its counts come from both sides.
    now = T0 + timedelta(hours=2, minutes=50)

    with statements(database) as cold:
        first = await _memo(memo, database, window, now)
    assert first == await _fresh(database, window)
    with statements(database) as warm:
        again = await _memo(memo, database, window, now)
    assert again == first
    # Warm: the settled range's stamp, then only the unsettled buckets.
    assert len(warm) == len(cold) - 3 == 4
    assert first.tokens.pairs > 300 and sum(h.n for h in first.activity.latency) > 600

    # An exchange replayed into settled time, as after an outage, is counted.
    await store(database, _later(22, 1, T0 + timedelta(minutes=31)))
    replayed = await _memo(memo, database, window, now)
    assert replayed == await _fresh(database, window) != first

    # Time moves on and more traffic arrives: settled time grows and stays right.
    await store(database, _later(23, 150, T0 + timedelta(seconds=SPAN_S)))
    later = now + timedelta(minutes=40)
    assert await _memo(memo, database, window, later) == await _fresh(database, window)

    # A purge of the oldest exchanges is seen too.
    async with database.engine.begin() as conn:
        await conn.execute(
            delete(EXCHANGES).where(EXCHANGES.c.created_at < T0 + timedelta(minutes=20))
        )
    assert await _memo(memo, database, window, later) == await _fresh(database, window)


async def test_a_window_ended_in_settled_time_is_counted_once(database: Database) -> None:
    await store(database, build_traffic(300, seed=24))
    window = ExchangeWindow(candidate=CANDIDATE, since=T0, until=T0 + timedelta(hours=2))
    memo = OverviewMemo(settle_s=120, recheck_s=0)
    now = T0 + timedelta(hours=5)
    first = await _memo(memo, database, window, now)
    assert first == await _fresh(database, window)
    with statements(database) as warm:
        assert await _memo(memo, database, window, now) == first
    assert len(warm) == 1  # the stamp alone


async def test_a_window_starting_in_unsettled_time_is_counted_each_time(
    database: Database,
) -> None:
    await store(database, build_traffic(200, seed=25))
    now = T0 + timedelta(seconds=SPAN_S)
    window = ExchangeWindow(candidate=CANDIDATE, since=now - timedelta(seconds=60))
    memo = OverviewMemo(settle_s=120, recheck_s=0)
    assert await _memo(memo, database, window, now) == await _fresh(database, window)


async def test_the_settled_stamp_is_checked_at_most_once_per_recheck_interval(
    database: Database,
) -> None:
    await store(database, build_traffic(300, seed=26))
    window = ExchangeWindow(candidate=CANDIDATE)
    memo = OverviewMemo(settle_s=120, recheck_s=60)
    now = T0 + timedelta(seconds=SPAN_S, minutes=30)  # everything settled
    first = await _memo(memo, database, window, now)
    await store(database, _later(27, 1, T0 + timedelta(minutes=31)))
    with statements(database) as sent:
        soon = await _memo(memo, database, window, now + timedelta(seconds=30))
    assert soon == first  # not checked yet: the late exchange is not seen within 60 s
    assert len(sent) == 3  # the unsettled part only (empty), no stamp
    checked = await _memo(memo, database, window, now + timedelta(seconds=61))
    assert checked == await _fresh(database, window) != first
