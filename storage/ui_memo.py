"""The overview's aggregates over a long window without rescanning settled time.

Scanning a million exchanges with their arms takes seconds, far over a page's
budget, but every count the overview shows adds up over time buckets. So the
buckets that have settled (ended ``settle_s`` ago) are counted once and kept;
each page counts only the buckets since, and checks that nothing changed in the
settled range: the number of exchanges there and the first and last arrival,
read from the created_at index alone, must be what they were when counted
(checked at most every ``recheck_s``). A late exchange (a spill replayed after
an outage) or a purge changes that stamp, and the settled range is counted again.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select

from storage.database import Database
from storage.report_sql import EXCHANGES, JUDGMENTS
from storage.ui_outcomes import JudgeTally, PairTokenSums, judge_tally, pair_token_sums
from storage.ui_overview import ArmActivity, arm_activity
from storage.window import ExchangeWindow

# The writer's batches land within this; anything later (a replayed spill) the stamp
# check finds. Each page counts at most SETTLE_S + GRAIN_S of traffic afresh.
SETTLE_S = 30.0
GRAIN_S = 30  # settled time grows half a minute at a time, whatever the plot's buckets
# The stamp reads every index entry of the settled range (a tenth of a second or more
# for a million): checked at most this often, so a late exchange shows within it.
RECHECK_S = 60.0


@dataclass(frozen=True, slots=True)
class OverviewAggregates:
    """Everything the overview counts over a window: per-arm activity and cost inputs."""

    activity: ArmActivity
    tokens: PairTokenSums

    def merged(self, other: OverviewAggregates) -> OverviewAggregates:
        return OverviewAggregates(
            self.activity.merged(other.activity), self.tokens.merged(other.tokens)
        )


async def overview_aggregates(
    db: Database, window: ExchangeWindow, *, bucket_s: int, candidate_prompt_needed: bool
) -> OverviewAggregates:
    """Counted now, over the whole window."""
    activity = await arm_activity(db, window, bucket_s=bucket_s)
    tokens = await pair_token_sums(db, window, candidate_prompt_needed=candidate_prompt_needed)
    return OverviewAggregates(activity, tokens)


@dataclass(frozen=True, slots=True)
class RangeStamp:
    """Every exchange from ``since`` to ``until``, whatever its candidate: how many, the
    first and the last arrival. Read from the created_at index without the rows."""

    count: int
    first: datetime | None
    last: datetime | None

    def joined(self, later: RangeStamp) -> RangeStamp:
        firsts = [t for t in (self.first, later.first) if t is not None]
        lasts = [t for t in (self.last, later.last) if t is not None]
        return RangeStamp(
            self.count + later.count,
            min(firsts) if firsts else None,
            max(lasts) if lasts else None,
        )


async def range_stamp(db: Database, since: datetime | None, until: datetime) -> RangeStamp:
    at = EXCHANGES.c.created_at
    in_range = [at < until] if since is None else [at >= since, at < until]

    def one(aggregate: Any) -> Any:
        return select(aggregate).where(*in_range).scalar_subquery()

    # Three scalar subqueries: min and max alone are a seek each on the index, where
    # computed beside the count they would compare every entry.
    query = select(one(func.count()), one(func.min(at)), one(func.max(at)))
    async with db.engine.connect() as conn:
        count, first, last = (await conn.execute(query)).one()
    return RangeStamp(int(count), first, last)


async def judgments_stamp(db: Database, candidate: str) -> tuple[int, datetime | None]:
    """How many judgments of ``candidate`` exist and the newest one's time: any verdict
    added, or removed with its exchange, changes it. Read from the judgments index."""
    j = JUDGMENTS.c
    query = select(func.count(), func.max(j.created_at)).where(j.candidate == candidate)
    async with db.engine.connect() as conn:
        count, newest = (await conn.execute(query)).one()
    return int(count), newest


@dataclass(frozen=True, slots=True)
class _Settled:
    until: datetime
    stamp: RangeStamp
    aggregates: OverviewAggregates
    checked_at: datetime  # when the stamp was last found unchanged


_Key = tuple[ExchangeWindow, int, bool]


class OverviewMemo:
    """Settled aggregates per window, the ``entries`` most recently used kept.

    One per process; not shared between replicas, each of which counts its own.
    Two pages asking at once may both count a range; both get the right answer.
    """

    def __init__(
        self,
        *,
        settle_s: float = SETTLE_S,
        grain_s: int = GRAIN_S,
        recheck_s: float = RECHECK_S,
        entries: int = 32,
    ) -> None:
        self.settle_s = settle_s
        self.grain_s = grain_s
        self.recheck_s = recheck_s
        self.entries = entries
        self._settled: OrderedDict[_Key, _Settled] = OrderedDict()
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

    def boundary(self, window: ExchangeWindow, now: datetime) -> datetime:
        """Where settled time ends: a multiple of ``grain_s``, or the window's end before.

        A plot bucket may straddle it: its counts from either side add up.
        """
        start = math.floor((now.timestamp() - self.settle_s) / self.grain_s) * self.grain_s
        boundary = datetime.fromtimestamp(start, UTC)
        if window.until is not None and window.until < boundary:
            return window.until
        return boundary

    async def aggregates(
        self,
        db: Database,
        window: ExchangeWindow,
        *,
        bucket_s: int,
        candidate_prompt_needed: bool,
        now: datetime,
    ) -> OverviewAggregates:
        """The window's aggregates as of ``now``: settled buckets from memory if unchanged,
        the rest counted now."""

        async def count(part: ExchangeWindow) -> OverviewAggregates:
            return await overview_aggregates(
                db, part, bucket_s=bucket_s, candidate_prompt_needed=candidate_prompt_needed
            )

        boundary = self.boundary(window, now)
        if window.since is not None and boundary <= window.since:
            return await count(window)
        key = (window, bucket_s, candidate_prompt_needed)
        settled = self._settled.pop(key, None)
        if settled is not None and settled.until > boundary:
            settled = None  # the clock went back
        if settled is not None and (now - settled.checked_at).total_seconds() >= self.recheck_s:
            if await range_stamp(db, window.since, settled.until) != settled.stamp:
                settled = None  # something arrived late or was purged: count again
            else:
                settled = replace(settled, checked_at=now)
        if settled is None:
            # The stamp before the count: a row landing in between fails the next check.
            stamp = await range_stamp(db, window.since, boundary)
            counted = await count(replace(window, until=boundary))
            settled = _Settled(boundary, stamp, counted, now)
        elif settled.until < boundary:
            stamp = await range_stamp(db, settled.until, boundary)
            more = await count(replace(window, since=settled.until, until=boundary))
            joined = settled.stamp.joined(stamp)
            settled = _Settled(
                boundary, joined, settled.aggregates.merged(more), settled.checked_at
            )
        self._settled[key] = settled
        while len(self._settled) > self.entries:
            self._settled.popitem(last=False)
        if window.until is not None and window.until <= settled.until:
            return settled.aggregates
        return settled.aggregates.merged(await count(replace(window, since=settled.until)))
