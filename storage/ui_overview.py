"""The overview's plots of each arm over a window, read from the rollups on SQLite and PostgreSQL.

An arm is the candidate (any observation of the named candidate upstream) or the
primary (any other upstream, but for shadows of other candidates, which are only
watched). Calls made to measure noise are left out: they would count the primary
twice. The rollups (``storage.rollups``) count, per period and arm, every call by
role, failure, fallback and latency and TTFT bin as exchanges are written; the
distributions, the error and fallback rates over time and the p50 and p95 over
time all come from those counts. PostgreSQL can also give the quantiles exactly
from the rows with ``percentile_cont``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, func, or_, select
from sqlalchemy.sql.selectable import FromClause

from core import Role
from storage.database import Database
from storage.report_sql import EXCHANGES, OBSERVATIONS, arm_role, failed_flag
from storage.rollups import ACTIVITY, ARM_ROLES, NO_BIN, TTFT, grain_for, periods_of
from storage.ui_bins import BIN_RATIO, bucket_start, period_expression, quantile_from_bins
from storage.window import ExchangeWindow


class Arm(StrEnum):
    PRIMARY = "primary"
    CANDIDATE = "candidate"


class Duration(StrEnum):
    """Which recorded duration a distribution is of."""

    LATENCY = "latency_ms"
    TTFT = "ttft_ms"


@dataclass(frozen=True, slots=True)
class Histogram:
    """Counts of successful calls per log-scale bin (see ``storage.ui_bins``)."""

    arm: Arm
    duration: Duration
    counts: Mapping[int, int]  # bin index -> calls

    @property
    def n(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True, slots=True)
class QuantilePoint:
    """p50 and p95 of one arm's successful calls in one time bucket."""

    bucket: datetime  # the bucket's start
    arm: Arm
    n: int
    p50_ms: float
    p95_ms: float


@dataclass(frozen=True, slots=True)
class QuantileSeries:
    points: tuple[QuantilePoint, ...]
    # 1.0 when exact (PostgreSQL); else the factor within which each value is exact.
    resolution: float


@dataclass(frozen=True, slots=True)
class RatePoint:
    """One arm's calls, failures and (candidate only) fallbacks in one time bucket."""

    bucket: datetime
    arm: Arm
    calls: int
    failed: int
    assigned: int  # exchanges the candidate was chosen to serve (0 for the primary)
    fallbacks: int  # of those, how many the primary answered after the candidate failed

    @property
    def error_rate(self) -> float:
        return self.failed / self.calls if self.calls else math.nan

    @property
    def fallback_rate(self) -> float:
        return self.fallbacks / self.assigned if self.assigned else math.nan


BinCounts = Mapping[int, int]  # log-scale bin index -> calls


def _added(a: Mapping[Any, int], b: Mapping[Any, int]) -> dict[Any, int]:
    total = dict(a)
    for key, count in b.items():
        total[key] = total.get(key, 0) + count
    return total


@dataclass(frozen=True, slots=True)
class ArmActivity:
    """Per time bucket and arm: latency and TTFT bin counts and the call counts behind the
    error and fallback rates. Counts add up, so windows that share no bucket merge."""

    bucket_s: int
    latency_bins: Mapping[tuple[int, Arm], BinCounts]
    ttft_bins: Mapping[tuple[int, Arm], BinCounts]
    # (bucket, arm) -> (calls, failed, assigned, fallbacks), as in RatePoint
    calls: Mapping[tuple[int, Arm], tuple[int, int, int, int]]

    def merged(self, other: ArmActivity) -> ArmActivity:
        if other.bucket_s != self.bucket_s:
            raise ValueError("only activity counted in equal buckets merges")

        def both(a: Mapping[Any, BinCounts], b: Mapping[Any, BinCounts]) -> dict[Any, BinCounts]:
            return {k: _added(a.get(k, {}), b.get(k, {})) for k in {*a, *b}}

        calls = dict(self.calls)
        for key, counts in other.calls.items():
            mine = calls.get(key, (0, 0, 0, 0))
            calls[key] = (
                mine[0] + counts[0],
                mine[1] + counts[1],
                mine[2] + counts[2],
                mine[3] + counts[3],
            )
        return ArmActivity(
            self.bucket_s,
            both(self.latency_bins, other.latency_bins),
            both(self.ttft_bins, other.ttft_bins),
            calls,
        )

    def _histograms(self, duration: Duration) -> tuple[Histogram, ...]:
        source = self.latency_bins if duration is Duration.LATENCY else self.ttft_bins
        totals: dict[Arm, dict[int, int]] = {a: {} for a in Arm}
        for (_, arm), counts in source.items():
            totals[arm] = _added(totals[arm], counts)
        return tuple(Histogram(a, duration, totals[a]) for a in Arm)

    @property
    def latency(self) -> tuple[Histogram, ...]:
        """Latency of each arm's successful calls over the whole window."""
        return self._histograms(Duration.LATENCY)

    @property
    def ttft(self) -> tuple[Histogram, ...]:
        """Time to first token of each arm's successful calls that recorded one."""
        return self._histograms(Duration.TTFT)

    @property
    def rates(self) -> tuple[RatePoint, ...]:
        """Error and fallback counts per bucket and arm, oldest first."""
        return tuple(
            RatePoint(bucket_start(b, self.bucket_s), arm, *counts)
            for (b, arm), counts in sorted(self.calls.items())
        )

    def quantiles(self) -> QuantileSeries:
        """p50 and p95 latency per bucket and arm, read from the bins (see ``storage.ui_bins``):
        each within a factor ``BIN_RATIO`` of the exact value, on every backend."""
        points = [
            QuantilePoint(
                bucket_start(b, self.bucket_s),
                arm,
                sum(counts.values()),
                quantile_from_bins(counts, 0.5),
                quantile_from_bins(counts, 0.95),
            )
            for (b, arm), counts in sorted(self.latency_bins.items())
        ]
        return QuantileSeries(tuple(points), BIN_RATIO)


def _arm(candidate: str, o: FromClause) -> ColumnElement[str]:
    return case((o.c.upstream == candidate, Arm.CANDIDATE.value), else_=Arm.PRIMARY.value)


def _arms_of(window: ExchangeWindow) -> tuple[FromClause, FromClause, list[ColumnElement[bool]]]:
    """Exchanges of the window, outer-joined to their arms' observations.

    Outer, and no condition on the arm in the WHERE clause (SQLite would turn the
    join inner): SQLite never reorders a LEFT JOIN, so it walks the exchanges
    (by the created_at index when the window starts somewhere) and finds each
    one's arms by primary key, where an inner join lets it scan every observation
    and look its exchange up at random, several times slower. Rows without an arm
    come back with a NULL role and are dropped by the caller.
    """
    e = EXCHANGES
    o = OBSERVATIONS.alias("o")
    cand = window.named_candidate
    # A split exchange the primary served names no candidate, so NULL belongs to the
    # window too.
    role = arm_role(o)
    roles = role.in_([r.value for r in ARM_ROLES])
    # A shadow of another candidate (one only watched beside the rollout's) is no arm here.
    ours = or_(role != Role.SHADOW.value, o.c.upstream == cand)
    joined = e.outerjoin(o, and_(o.c.exchange_id == e.c.id, roles, ours))
    where = [func.coalesce(e.c.candidate, cand) == cand, *window.conditions()]
    return joined, o, where


def _activity_query(window: ExchangeWindow, bucket_s: int) -> Select[Any]:
    r = ACTIVITY.c
    grain = grain_for(window, bucket_s)
    candidate = window.named_candidate
    arm = _arm(candidate, ACTIVITY)
    # Time buckets are whole periods of the grain (grain_for), so integer division places them.
    bucket = r.period * grain // bucket_s
    keys = (bucket, arm, r.role, r.failed, r.fallback, r.measure, r.bin)
    return (
        select(*keys, func.sum(r.calls))
        .where(
            *periods_of(window, ACTIVITY, grain),
            # A split exchange the primary served names no candidate: it belongs too.
            r.candidate.in_((candidate, "")),
            r.role.in_([role.value for role in ARM_ROLES]),
            # A shadow of another candidate (one only watched beside the rollout's) is no arm.
            or_(r.role != Role.SHADOW.value, r.upstream == candidate),
        )
        .group_by(*keys)
    )


async def arm_activity(db: Database, window: ExchangeWindow, *, bucket_s: int) -> ArmActivity:
    """Latency and TTFT distributions and error and fallback counts per bucket and arm,
    read from the rollups (``storage.rollups``): the window's bounds and ``bucket_s`` are
    whole minutes."""
    if bucket_s <= 0:
        raise ValueError("a time bucket lasts at least a second")
    async with db.engine.connect() as conn:
        rows = (await conn.execute(_activity_query(window, bucket_s))).all()
    bins: dict[tuple[int, Arm], dict[int, int]] = defaultdict(lambda: defaultdict(int))
    ttft: dict[tuple[int, Arm], dict[int, int]] = defaultdict(lambda: defaultdict(int))
    calls: dict[tuple[int, Arm], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for bucket, arm_value, role, failed, fallback, measure, index, count in rows:
        arm, key, count = Arm(arm_value), (int(bucket), Arm(arm_value)), int(count)
        if measure == TTFT:
            ttft[key][int(index)] += count
            continue
        counts = calls[key]
        counts[0] += count
        counts[1] += count if failed else 0
        if role == Role.SERVED.value and (arm is Arm.CANDIDATE or fallback):
            # The exchange's served arm stands for the exchange: once per exchange.
            calls[(int(bucket), Arm.CANDIDATE)][2] += count
            calls[(int(bucket), Arm.CANDIDATE)][3] += count if fallback else 0
        if index != NO_BIN:
            bins[key][int(index)] += count
    return ArmActivity(
        bucket_s,
        {key: dict(value) for key, value in bins.items()},
        {key: dict(value) for key, value in ttft.items()},
        {key: (c[0], c[1], c[2], c[3]) for key, c in calls.items()},
    )


def _percentile_query(window: ExchangeWindow, bucket_s: int) -> Select[Any]:
    joined, o, where = _arms_of(window)
    bucket = period_expression("postgresql", EXCHANGES.c.created_at, bucket_s)
    arm = _arm(window.named_candidate, o)
    latency = o.c.latency_ms
    return (
        select(
            bucket,
            arm,
            func.count(),
            func.percentile_cont(0.5).within_group(latency),
            func.percentile_cont(0.95).within_group(latency),
        )
        .select_from(joined)
        .where(*where, failed_flag(o) == 0, latency.is_not(None))
        .group_by(bucket, arm)
        .order_by(bucket, arm)
    )


async def exact_latency_quantiles(
    db: Database, window: ExchangeWindow, *, bucket_s: int
) -> QuantileSeries:
    """p50 and p95 latency per bucket and arm, exact (``percentile_cont``): PostgreSQL only.

    SQLite has no percentile aggregate; ``ArmActivity.quantiles`` reads them from
    the bins on either backend, and is what a memoised overview can use.
    """
    if db.dialect != "postgresql":
        raise ValueError("exact quantiles need PostgreSQL's percentile_cont")
    async with db.engine.connect() as conn:
        rows = (await conn.execute(_percentile_query(window, bucket_s))).all()
    return QuantileSeries(
        tuple(
            QuantilePoint(bucket_start(int(b), bucket_s), Arm(a), int(n), p50, p95)
            for b, a, n, p50, p95 in rows
        ),
        1.0,
    )
