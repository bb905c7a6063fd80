"""The judge's tally is counted again only when the candidate's judgments change."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import event

from core.outcome import PairOutcome
from storage.database import Database
from storage.judgments import Judgment, add_judgments
from storage.ui_memo import JudgeTallyMemo
from storage.ui_outcomes import judge_tally
from storage.window import ExchangeWindow
from tests.storage.ui_data import CANDIDATE, T0, Mix, build_traffic, is_pair, store


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
    memo = JudgeTallyMemo()
    first = await memo.judge_tally(database, window)
    assert first == await judge_tally(database, window) and first.ties == 20
    with statements(database) as sent:
        assert await memo.judge_tally(database, window) == first
    assert len(sent) == 1  # the judgments' stamp alone
    await add_judgments(database, [verdict(pairs[0], PairOutcome.CANDIDATE, 1)])
    again = await memo.judge_tally(database, window)
    assert (again.wins, again.ties) == (1, 19)
