"""The overview's pair outcomes, cost inputs and rollout history, as SQL aggregates.

Pairs are the report's pairs (``storage.report_sql.pair_join``), so the judge's
tally and the cost inputs cover the same exchanges as ``understudy report``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import ColumnElement, Select, Table, func, or_, select

from core.outcome import PairOutcome, ReviewOutcome
from storage.database import Database
from storage.models import AuditRow, FlagRow, ReviewRow
from storage.report_sql import EXCHANGES, JUDGMENTS, pair_join, pairs_where
from storage.rollups import PAIR_SUMS, PAIRS, grain_for, periods_of
from storage.window import ExchangeWindow

REVIEWS: Table = ReviewRow.__table__  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class JudgeTally:
    """The judge's newest verdict on each pair, counted from the candidate's side.

    The judge names a winner or a tie; "both bad" is a verdict only people give.
    """

    wins: int  # the candidate's answer preferred
    losses: int  # the primary's answer preferred
    ties: int

    @property
    def n(self) -> int:
        return self.wins + self.losses + self.ties


def _judge_tally_query(window: ExchangeWindow) -> Select[Any]:
    joined, _, _ = pair_join(window.named_candidate)
    j = JUDGMENTS.c
    # A pair judged more than once counts once, by its newest judgment, as in the report.
    newest = func.row_number().over(
        partition_by=j.exchange_id, order_by=(j.created_at.desc(), j.id.desc())
    )
    judged = (
        select(j.outcome.label("outcome"), newest.label("newest"))
        .select_from(joined.join(JUDGMENTS, j.exchange_id == EXCHANGES.c.id))
        .where(*pairs_where(window), j.candidate == window.named_candidate)
        .subquery()
    )
    return (
        select(judged.c.outcome, func.count())
        .where(judged.c.newest == 1)
        .group_by(judged.c.outcome)
    )


async def judge_tally(db: Database, window: ExchangeWindow) -> JudgeTally:
    async with db.engine.connect() as conn:
        counts = {
            PairOutcome(o): int(n)
            for o, n in (await conn.execute(_judge_tally_query(window))).all()
        }
    return JudgeTally(
        wins=counts.get(PairOutcome.CANDIDATE, 0),
        losses=counts.get(PairOutcome.PRIMARY, 0),
        ties=counts.get(PairOutcome.TIE, 0),
    )


@dataclass(frozen=True, slots=True)
class ReviewTally:
    """People's decided reviews of the window's pairs, one per reviewer and pair; skips
    and reviews still pending are not counted."""

    wins: int
    losses: int
    ties: int
    both_bad: int

    @property
    def n(self) -> int:
        return self.wins + self.losses + self.ties + self.both_bad


async def review_tally(db: Database, window: ExchangeWindow) -> ReviewTally:
    r, e = REVIEWS.c, EXCHANGES.c
    query = (
        select(r.outcome, func.count())
        .select_from(REVIEWS.join(EXCHANGES, e.id == r.exchange_id))
        .where(
            r.candidate == window.named_candidate,
            r.outcome.is_not(None),
            r.outcome != ReviewOutcome.SKIPPED.value,
            *window.conditions(),
        )
        .group_by(r.outcome)
    )
    async with db.engine.connect() as conn:
        counts = {ReviewOutcome(o): int(n) for o, n in (await conn.execute(query)).all()}
    return ReviewTally(
        wins=counts.get(ReviewOutcome.CANDIDATE, 0),
        losses=counts.get(ReviewOutcome.PRIMARY, 0),
        ties=counts.get(ReviewOutcome.TIE, 0),
        both_bad=counts.get(ReviewOutcome.BOTH_BAD, 0),
    )


# ---- cost -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ArmTokenMeans:
    """Mean tokens per request of one arm over the pairs whose cost is known."""

    prompt: float  # unknown counts as 0, as a self-hosted replica's busy time takes it
    cached_prompt: float  # unknown counts as 0, as the price computation takes it
    uncached_prompt: float  # per request max(prompt - cached, 0): what list prices bill
    completion: float


@dataclass(frozen=True, slots=True)
class PairTokenMeans:
    """What the cost projection needs from a window, without reading pairs one by one.

    Every per-request cost is linear in these counts, so the evaluation's cost
    functions applied to the means give the mean cost (``evaluation.cost``).
    """

    pairs: int  # every pair in the window: the observed traffic
    first_s: float  # epoch seconds of the first and last pair
    last_s: float
    n: int  # pairs with known token counts on both arms
    primary: ArmTokenMeans
    candidate: ArmTokenMeans


@dataclass(frozen=True, slots=True)
class PairTokenSums:
    """Token sums over a window's pairs: they add up, so windows with no pair in common merge."""

    pairs: int
    first_s: float  # NaN when there is no pair
    last_s: float
    n: int
    primary: tuple[float, float, float, float]  # prompt, cached, uncached, completion
    candidate: tuple[float, float, float, float]

    def merged(self, other: PairTokenSums) -> PairTokenSums:
        def add(a: tuple[float, ...], b: tuple[float, ...]) -> tuple[float, float, float, float]:
            w, x, y, z = (i + j for i, j in zip(a, b, strict=True))
            return w, x, y, z

        return PairTokenSums(
            pairs=self.pairs + other.pairs,
            first_s=float(np.fmin(self.first_s, other.first_s)),
            last_s=float(np.fmax(self.last_s, other.last_s)),
            n=self.n + other.n,
            primary=add(self.primary, other.primary),
            candidate=add(self.candidate, other.candidate),
        )

    def means(self) -> PairTokenMeans:
        def mean(sums: tuple[float, float, float, float]) -> ArmTokenMeans:
            if self.n == 0:
                return ArmTokenMeans(math.nan, math.nan, math.nan, math.nan)
            prompt, cached, uncached, completion = (v / self.n for v in sums)
            return ArmTokenMeans(prompt, cached, uncached, completion)

        return PairTokenMeans(
            self.pairs, self.first_s, self.last_s, self.n, mean(self.primary), mean(self.candidate)
        )


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


async def pair_token_sums(
    db: Database, window: ExchangeWindow, *, candidate_prompt_needed: bool
) -> PairTokenSums:
    """Token sums over the window's pairs for the cost projection (``.means()``), read from
    the rollups (``storage.rollups``): the window's bounds are whole minutes.

    ``candidate_prompt_needed``: True when the candidate is priced per token (an
    API list price), where a request with no prompt count has no known cost; a
    self-hosted candidate's cost needs only its completion count.
    """
    r = PAIRS.c
    grain = grain_for(window)
    query = (
        select(
            r.candidate_prompt_known,
            func.sum(r.pairs),
            func.min(r.first_s),
            func.max(r.last_s),
            func.sum(r.n),
            *(func.sum(r[name]) for name in PAIR_SUMS),
        )
        .where(*periods_of(window, PAIRS, grain), r.candidate == window.named_candidate)
        .group_by(r.candidate_prompt_known)
    )
    async with db.engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    none = (0.0, 0.0, 0.0, 0.0)
    total = PairTokenSums(0, math.nan, math.nan, 0, none, none)
    for prompt_known, pairs, first, last, n, *sums in rows:
        counted = not candidate_prompt_needed or bool(prompt_known)
        p0, p1, p2, p3, c0, c1, c2, c3 = (_number(v) if counted else 0.0 for v in sums)
        total = total.merged(
            PairTokenSums(
                pairs=int(pairs),
                first_s=_number(first),
                last_s=_number(last),
                n=int(n) if counted else 0,
                primary=(p0, p1, p2, p3),
                candidate=(c0, c1, c2, c3),
            )
        )
    return total


# ---- rollout history --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RolloutPoint:
    """One transition of the rollout: the flag version written and its audit entry."""

    at: datetime
    version: int
    route: str | None  # None: the default for every route
    mode: str
    candidate: str | None
    percent: float
    stage: str | None
    paused: bool
    killed: bool
    actor: str
    action: str
    reason: str | None


async def rollout_history(
    db: Database, *, since: datetime | None = None, until: datetime | None = None
) -> list[RolloutPoint]:
    """Every transition from ``since`` (inclusive) to ``until`` (exclusive), oldest first,
    led by the last transition before ``since`` of each route: the state the plot starts in.
    """
    a, f = AuditRow.__table__.c, FlagRow.__table__.c
    joined = AuditRow.__table__.join(FlagRow.__table__, f.version == a.flag_version)
    in_window: list[ColumnElement[bool]] = []
    if until is not None:
        in_window.append(f.changed_at < until)
    if since is not None:
        before = (
            select(func.max(FlagRow.version))
            .where(FlagRow.changed_at < since)
            .group_by(FlagRow.route)
        )
        in_window.append(or_(f.changed_at >= since, f.version.in_(before)))
    query = (
        select(
            f.changed_at.label("at"),
            f.version,
            f.route,
            f.mode,
            f.candidate,
            f.percent,
            f.stage,
            f.paused,
            f.killed,
            a.actor,
            a.action,
            a.reason,
        )
        .select_from(joined)
        .where(*in_window)
        .order_by(f.version)
    )
    async with db.engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [RolloutPoint(**row._mapping) for row in rows]
