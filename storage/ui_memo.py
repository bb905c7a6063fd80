"""The overview's counts: per-arm activity and cost inputs from the rollups, and the
judge's tally, kept until the candidate's judgments change.

The rollups (``storage.rollups``) are kept as exchanges are written, so a page
reads a few thousand rows whatever the window; the judge's tally is counted from
the judgments, which can number as many as the pairs, so it is counted again
only when a verdict was added or removed.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from storage.database import Database
from storage.report_sql import JUDGMENTS
from storage.ui_outcomes import JudgeTally, PairTokenSums, judge_tally, pair_token_sums
from storage.ui_overview import ArmActivity, arm_activity
from storage.window import ExchangeWindow


@dataclass(frozen=True, slots=True)
class OverviewAggregates:
    """Everything the overview counts over a window: per-arm activity and cost inputs."""

    activity: ArmActivity
    tokens: PairTokenSums


async def overview_aggregates(
    db: Database, window: ExchangeWindow, *, bucket_s: int, candidate_prompt_needed: bool
) -> OverviewAggregates:
    """Read from the rollups: the window's bounds and ``bucket_s`` are whole minutes."""
    activity = await arm_activity(db, window, bucket_s=bucket_s)
    tokens = await pair_token_sums(db, window, candidate_prompt_needed=candidate_prompt_needed)
    return OverviewAggregates(activity, tokens)


async def judgments_stamp(db: Database, candidate: str) -> tuple[int, datetime | None]:
    """How many judgments of ``candidate`` exist and the newest one's time: any verdict
    added, or removed with its exchange, changes it. Read from the judgments index."""
    j = JUDGMENTS.c
    query = select(func.count(), func.max(j.created_at)).where(j.candidate == candidate)
    async with db.engine.connect() as conn:
        count, newest = (await conn.execute(query)).one()
    return int(count), newest


class JudgeTallyMemo:
    """The judge's tally per window, the ``entries`` most recently used kept.

    One per process; not shared between replicas, each of which counts its own.
    """

    def __init__(self, *, entries: int = 64) -> None:
        self.entries = entries
        self._tallies: OrderedDict[
            ExchangeWindow, tuple[tuple[int, datetime | None], JudgeTally]
        ] = OrderedDict()

    async def judge_tally(self, db: Database, window: ExchangeWindow) -> JudgeTally:
        """The judge's tally, counted again only when the candidate's judgments changed."""
        stamp = await judgments_stamp(db, window.named_candidate)
        kept = self._tallies.pop(window, None)
        # A verdict is written after its exchange: judgments that did not change mean a
        # tally that did not change, whatever arrived since.
        tally = kept[1] if kept is not None and kept[0] == stamp else await judge_tally(db, window)
        self._tallies[window] = (stamp, tally)
        while len(self._tallies) > self.entries:
            self._tallies.popitem(last=False)
        return tally
