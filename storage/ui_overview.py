"""The overview's plots of each arm over a window, as SQL aggregates on SQLite and PostgreSQL.

An arm is the candidate (any observation of the named candidate upstream) or the
primary (any other upstream). Calls made to measure noise are left out: they would
count the primary twice. One grouped scan counts, per time bucket and arm, every
observation by role, failure, fallback and latency bin; the latency distribution,
the error and fallback rates over time and (on SQLite) the quantiles over time all
come from those counts. Time to first token gets a second scan of the same shape.
PostgreSQL computes the quantiles over time exactly with ``percentile_cont``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, func, select
from sqlalchemy.sql.selectable import FromClause

from core import Role
from storage.database import Database
from storage.report_sql import EXCHANGES, OBSERVATIONS, failed_flag
from storage.ui_bins import (
    BIN_RATIO,
    bin_expression,
    bucket_expression,
    bucket_start,
    quantile_from_bins,
)
from storage.window import ExchangeWindow

# The roles that are an arm answering (or failing) a client's request; NOISE is not one.
ARM_ROLES = (Role.SERVED, Role.SHADOW, Role.REVERSE_SHADOW, Role.FAILED_OVER)


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


@dataclass(frozen=True, slots=True)
class ArmActivity:
    """What the overview plots per arm over a window, from one grouped scan."""

    latency: tuple[Histogram, ...]
    rates: tuple[RatePoint, ...]
    bucket_s: int
    bins: Mapping[tuple[int, Arm], Mapping[int, int]]  # (bucket, arm) -> latency bin counts


def _arm(candidate: str, o: FromClause) -> ColumnElement[str]:
    return case((o.c.upstream == candidate, Arm.CANDIDATE.value), else_=Arm.PRIMARY.value)


def _arms_of(window: ExchangeWindow) -> tuple[FromClause, FromClause, list[ColumnElement[bool]]]:
    """Exchanges of the window joined to their arms' observations."""
    e = EXCHANGES
    o = OBSERVATIONS.alias("o")
    cand = window.named_candidate
    # `|| ''`: without statistics SQLite would walk the role index; the primary key is
    # the way in from an exchange. A split exchange the primary served names no
    # candidate, so NULL belongs to the window too.
    roles = o.c.role.concat("").in_([r.value for r in ARM_ROLES])
    joined = e.join(o, and_(o.c.exchange_id == e.c.id, roles))
    where = [func.coalesce(e.c.candidate, cand) == cand, *window.conditions()]
    return joined, o, where


def _activity_query(dialect: str, window: ExchangeWindow, bucket_s: int) -> Select[Any]:
    joined, o, where = _arms_of(window)
    e = EXCHANGES.c
    bucket = bucket_expression(dialect, e.created_at, bucket_s)
    arm = _arm(window.named_candidate, o)
    failed = failed_flag(o)
    # Failed calls are counted without a bin: a timeout's latency is the timeout's.
    latency_bin = case((failed == 0, bin_expression(dialect, o.c.latency_ms)), else_=None)
    keys = (bucket, arm, o.c.role, failed, e.fallback, latency_bin)
    return select(*keys, func.count()).select_from(joined).where(*where).group_by(*keys)


def _is_candidate(arm: Any) -> bool:
    return str(arm) == Arm.CANDIDATE.value


async def arm_activity(db: Database, window: ExchangeWindow, *, bucket_s: int) -> ArmActivity:
    """Latency distributions and error and fallback rates over time, per arm."""
    if bucket_s <= 0:
        raise ValueError("a time bucket lasts at least a second")
    async with db.engine.connect() as conn:
        rows = (await conn.execute(_activity_query(db.dialect, window, bucket_s))).all()
    bins: dict[tuple[int, Arm], dict[int, int]] = defaultdict(lambda: defaultdict(int))
    totals: dict[Arm, dict[int, int]] = {a: defaultdict(int) for a in Arm}
    rates: dict[tuple[int, Arm], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for bucket, arm_value, role, failed, fallback, latency_bin, count in rows:
        arm = Arm(arm_value)
        counts = rates[(int(bucket), arm)]
        counts[0] += count
        counts[1] += count if failed else 0
        if role == Role.SERVED.value and (_is_candidate(arm) or fallback):
            # The exchange's served arm stands for the exchange: once per exchange.
            rates[(int(bucket), Arm.CANDIDATE)][2] += count
            rates[(int(bucket), Arm.CANDIDATE)][3] += count if fallback else 0
        if latency_bin is not None:
            bins[(int(bucket), arm)][int(latency_bin)] += count
            totals[arm][int(latency_bin)] += count
    return ArmActivity(
        latency=tuple(Histogram(a, Duration.LATENCY, dict(totals[a])) for a in Arm),
        rates=tuple(
            RatePoint(bucket_start(b, bucket_s), a, *values)
            for (b, a), values in sorted(rates.items())
        ),
        bucket_s=bucket_s,
        bins={key: dict(value) for key, value in bins.items()},
    )


def _ttft_query(dialect: str, window: ExchangeWindow) -> Select[Any]:
    joined, o, where = _arms_of(window)
    arm = _arm(window.named_candidate, o)
    ttft_bin = bin_expression(dialect, o.c.ttft_ms)
    keys: tuple[ColumnElement[Any], ...] = (arm, ttft_bin)
    ok = and_(failed_flag(o) == 0, o.c.ttft_ms.is_not(None))
    return select(*keys, func.count()).select_from(joined).where(*where, ok).group_by(*keys)


async def ttft_histograms(db: Database, window: ExchangeWindow) -> tuple[Histogram, ...]:
    """Time to first token of each arm's successful streamed calls, in log-scale bins."""
    async with db.engine.connect() as conn:
        rows = (await conn.execute(_ttft_query(db.dialect, window))).all()
    totals: dict[Arm, dict[int, int]] = {a: {} for a in Arm}
    for arm, ttft_bin, count in rows:
        totals[Arm(arm)][int(ttft_bin)] = int(count)
    return tuple(Histogram(a, Duration.TTFT, totals[a]) for a in Arm)


def _percentile_query(window: ExchangeWindow, bucket_s: int) -> Select[Any]:
    joined, o, where = _arms_of(window)
    bucket = bucket_expression("postgresql", EXCHANGES.c.created_at, bucket_s)
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


async def latency_quantiles(
    db: Database, window: ExchangeWindow, activity: ArmActivity
) -> QuantileSeries:
    """p50 and p95 latency per arm and time bucket of ``activity``.

    PostgreSQL: exact, with ``percentile_cont``. SQLite has no percentile
    aggregate: the quantiles are read from the activity's latency bins, each
    within a factor ``BIN_RATIO`` of the exact value.
    """
    if db.dialect != "postgresql":
        points = [
            QuantilePoint(
                bucket_start(b, activity.bucket_s),
                arm,
                sum(counts.values()),
                quantile_from_bins(counts, 0.5),
                quantile_from_bins(counts, 0.95),
            )
            for (b, arm), counts in sorted(activity.bins.items())
        ]
        return QuantileSeries(tuple(points), BIN_RATIO)
    async with db.engine.connect() as conn:
        rows = (await conn.execute(_percentile_query(window, activity.bucket_s))).all()
    return QuantileSeries(
        tuple(
            QuantilePoint(bucket_start(int(b), activity.bucket_s), Arm(a), int(n), p50, p95)
            for b, a, n, p50, p95 in rows
        ),
        1.0,
    )
