"""People's reviews as the quality metric reads them, and the labels agreement is computed on.

A pair reviewed by several people counts once, by the sign of their summed preferences
(a split vote is a tie), so the sample stays one outcome per pair like the judge's.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import String, select, type_coerce

from core.outcome import PairOutcome, QualitySource, ReviewOutcome
from storage.database import Database
from storage.models import ReviewerRow
from storage.report_samples import JudgmentCodes
from storage.report_sql import EXCHANGES, JUDGMENTS
from storage.reviews import REVIEWS
from storage.window import ExchangeWindow


@dataclass(frozen=True, slots=True)
class ReviewLabel:
    exchange_id: str  # hex
    reviewer: str
    preference: PairOutcome


def _key(value: Any) -> str:
    return str(value).replace("-", "").lower()


async def review_labels(db: Database, window: ExchangeWindow) -> list[ReviewLabel]:
    """Every decided, unskipped review of the window's candidate, oldest first."""
    r, e = REVIEWS.c, EXCHANGES.c
    query = (
        select(type_coerce(r.exchange_id, String), ReviewerRow.name, r.outcome)
        .select_from(REVIEWS.join(EXCHANGES, e.id == r.exchange_id).join(ReviewerRow))
        .where(
            r.candidate == window.named_candidate,
            r.outcome.is_not(None),
            r.outcome != ReviewOutcome.SKIPPED.value,
            *window.conditions(),
        )
        .order_by(r.decided_at, r.id)
    )
    async with db.engine.connect() as conn:
        found = (await conn.execute(query)).all()
    labels = []
    for exchange_id, reviewer, outcome in found:
        preference = ReviewOutcome(outcome).preference
        if preference is not None:
            labels.append(ReviewLabel(_key(exchange_id), str(reviewer), preference))
    return labels


async def judge_labels(
    db: Database, window: ExchangeWindow, *, reviewed_only: bool = False
) -> dict[str, PairOutcome]:
    """The LLM judge's newest verdict per pair of the window's candidate; ``reviewed_only``:
    only on pairs someone has decided on (all agreement needs, and far fewer)."""
    j, e, r = JUDGMENTS.c, EXCHANGES.c, REVIEWS.c
    where = [j.candidate == window.named_candidate, *window.conditions()]
    if reviewed_only:
        decided = select(r.exchange_id).where(
            r.candidate == window.named_candidate, r.outcome.is_not(None)
        )
        where.append(j.exchange_id.in_(decided))
    query = (
        select(type_coerce(j.exchange_id, String), j.outcome)
        .select_from(JUDGMENTS.join(EXCHANGES, e.id == j.exchange_id))
        .where(*where)
        .order_by(j.created_at, j.id)
    )
    async with db.engine.connect() as conn:
        return {_key(i): PairOutcome(o) for i, o in (await conn.execute(query)).all()}


def pair_preferences(labels: Sequence[ReviewLabel]) -> dict[str, int]:
    """One code per pair: the sign of its reviewers' summed preference codes."""
    sums: dict[str, int] = defaultdict(int)
    for label in labels:
        sums[label.exchange_id] += label.preference.code
    return {key: int(np.sign(total)) for key, total in sums.items()}


async def load_review_codes(
    db: Database, window: ExchangeWindow, exchange_ids: Sequence[Any]
) -> JudgmentCodes:
    """People's preference on these rows (``exchange_ids`` from a column load)."""
    by_pair = pair_preferences(await review_labels(db, window))
    rows = [row for row, i in enumerate(exchange_ids) if _key(i) in by_pair]
    codes = [by_pair[_key(exchange_ids[row])] for row in rows]
    return JudgmentCodes(np.array(rows, dtype=np.int64), np.array(codes, dtype=np.float64))


def merge_quality(
    judge: JudgmentCodes, people: JudgmentCodes, prefer: QualitySource
) -> JudgmentCodes:
    """One outcome per row: the one source that rated it, or ``prefer`` when both did."""
    first, second = (people, judge) if prefer is QualitySource.REVIEWERS else (judge, people)
    merged = dict(zip(second.rows.tolist(), second.codes.tolist(), strict=True))
    merged.update(zip(first.rows.tolist(), first.codes.tolist(), strict=True))
    rows = sorted(merged)
    return JudgmentCodes(
        np.array(rows, dtype=np.int64), np.array([merged[r] for r in rows], dtype=np.float64)
    )
