"""Judging a replay run's pairs: the primary's recorded answer against the replayed one.

Verdicts are kept on the run's results, never in the judgments of live pairs.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, or_, select, update

from core import Exchange, Observation, Role
from core.outcome import PairOutcome
from storage.database import Database
from storage.judge_queries import PairToJudge
from storage.models import ReplayResultRow
from storage.replay import ReplayPair, pairs_by_id


def primary_answer(exchange: Exchange) -> Observation | None:
    """The primary's recorded answer: the served one, or its reverse shadow when the
    candidate served."""
    if exchange.decision.served_is_candidate and not exchange.fallback:
        return exchange.arm(Role.REVERSE_SHADOW)
    return exchange.arm(Role.SERVED)


def judgeable(pair: ReplayPair) -> PairToJudge | None:
    """The pair as the judge sees it, when both answers are text."""
    recorded = primary_answer(pair.original)
    if not pair.replayed.ok or pair.replayed.text is None:
        return None
    if recorded is None or not recorded.ok or recorded.text is None:
        return None
    return PairToJudge(
        pair.original.id,
        pair.original.created_at,
        pair.original.request,
        pair.replayed.text,
        recorded.text,
    )


@dataclass(frozen=True, slots=True)
class ReplayJudgeBatch:
    pairs: list[PairToJudge]
    resume_after: uuid.UUID | None  # None: every result was looked at


async def unjudged_replay_pairs(
    db: Database,
    run_id: int,
    *,
    judge_model: str,
    prompt_version: str,
    after: uuid.UUID | None,
    limit: int,
) -> ReplayJudgeBatch:
    """The run's pairs this judge model and prompt have not judged, among ``limit`` results
    by exchange id after ``after`` (fewer: a failed answer is not judged)."""
    r = ReplayResultRow
    query = (
        select(r.exchange_id)
        .where(
            r.run_id == run_id,
            r.replayed_at.is_not(None),
            r.text.is_not(None),
            or_(
                r.judge_outcome.is_(None),
                r.judge_model != judge_model,
                r.judge_prompt_version != prompt_version,
            ),
        )
        .order_by(r.exchange_id)
        .limit(limit)
    )
    if after is not None:
        query = query.where(r.exchange_id > after)
    async with db.sessions() as session:
        ids = list((await session.scalars(query)).all())
    pairs = await pairs_by_id(db, run_id, ids)
    found = [p for p in (judgeable(pair) for pair in pairs) if p is not None]
    return ReplayJudgeBatch(found, ids[-1] if len(ids) == limit else None)


async def store_replay_judgments(
    db: Database,
    run_id: int,
    verdicts: Sequence[tuple[uuid.UUID, PairOutcome]],
    *,
    judge_model: str,
    prompt_version: str,
) -> None:
    r = ReplayResultRow
    now = datetime.now(UTC)
    async with db.engine.begin() as conn:
        for exchange_id, outcome in verdicts:
            await conn.execute(
                update(r)
                .where(r.run_id == run_id, r.exchange_id == exchange_id)
                .values(
                    judge_model=judge_model,
                    judge_prompt_version=prompt_version,
                    judge_outcome=outcome.value,
                    judged_at=now,
                )
            )


async def judge_tally(db: Database, run_id: int) -> dict[str, dict[str, int]]:
    """Outcome counts of the run's judged pairs, by judge model."""
    r = ReplayResultRow
    query = (
        select(r.judge_model, r.judge_outcome, func.count())
        .where(r.run_id == run_id, r.judge_outcome.is_not(None))
        .group_by(r.judge_model, r.judge_outcome)
    )
    tally: dict[str, dict[str, int]] = {}
    async with db.sessions() as session:
        for model, outcome, count in (await session.execute(query)).all():
            tally.setdefault(str(model), dict.fromkeys((o.value for o in PairOutcome), 0))[
                str(outcome)
            ] = int(count)
    return tally
