"""The overview memo gives what a fresh count gives, however the data moved in between."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, event

from core.outcome import PairOutcome
from storage.database import Database
from storage.judgments import Judgment, add_judgments
from storage.report_sql import EXCHANGES
from storage.ui_memo import OverviewAggregates, OverviewMemo, overview_aggregates
from storage.ui_outcomes import judge_tally
from storage.window import ExchangeWindow
from tests.storage.ui_data import CANDIDATE, SPAN_S, T0, Mix, build_traffic, is_pair, store

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
        soon = await _memo(memo, database, window, now + timedelta(seconds=20))
    assert soon == first  # not checked yet: the late exchange is not seen within 60 s
    assert len(sent) == 3  # the unsettled part only (empty), no stamp
    checked = await _memo(memo, database, window, now + timedelta(seconds=61))
    assert checked == await _fresh(database, window) != first


async def test_the_judge_tally_is_counted_again_only_when_the_judgments_change(
    database: Database,
) -> None:
    exchanges = build_traffic(200, seed=28, mix=Mix(reverse=0.0))
    await store(database, exchanges)
    pairs = [e for e in exchanges if is_pair(e)]
    window = ExchangeWindow(candidate=CANDIDATE)

    def verdict(e: Any, outcome: PairOutcome, minute: int) -> Judgment:
        at = T0 + timedelta(days=1, minutes=minute)
        return Judgment(e.id, CANDIDATE, "judge-1", "v1", outcome, created_at=at)

    await add_judgments(database, [verdict(e, PairOutcome.TIE, 0) for e in pairs[:20]])
    memo = OverviewMemo()
    first = await memo.judge_tally(database, window)
    assert first == await judge_tally(database, window) and first.ties == 20
    with statements(database) as sent:
        assert await memo.judge_tally(database, window) == first
    assert len(sent) == 1  # the judgments' stamp alone
    await add_judgments(database, [verdict(pairs[0], PairOutcome.CANDIDATE, 1)])
    again = await memo.judge_tally(database, window)
    assert (again.wins, again.ties) == (1, 19)
