"""Blind reviews: pairs a reviewer may be shown, the pending item, decisions and undo.

Which pair comes next is the web UI's choice (``dashboards.queue``); this module only
finds pairs that qualify and records what happened to them. A review row is created
pending (``outcome`` NULL) when its pair is shown, and decided by the reviewer.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, Table, and_, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.selectable import FromClause

from core.outcome import PairOutcome, ReviewOutcome
from storage.database import Database
from storage.judge_queries import _answered as answered
from storage.models import ReviewRow
from storage.report_sql import EXCHANGES, JUDGMENTS, pair_join, took_part

REVIEWS: Table = ReviewRow.__table__  # type: ignore[assignment]
CANDIDATE_FIRST, PRIMARY_FIRST = "candidate_first", "primary_first"


@dataclass(frozen=True, slots=True)
class EligiblePair:
    """A shadow pair this reviewer has not seen and fewer than K people have decided."""

    exchange_id: uuid.UUID
    route: str
    judge: PairOutcome | None  # the LLM judge's newest verdict on it, if any
    candidate_text: str
    primary_text: str


@dataclass(frozen=True, slots=True)
class PendingItem:
    """A pair shown to a reviewer and not decided yet."""

    token: str
    shown_order: str
    request: Mapping[str, Any] | None
    candidate_text: str
    primary_text: str


def _counted() -> ColumnElement[bool]:
    """Decided reviews that state a preference or both bad: skips and pending do not count."""
    return and_(REVIEWS.c.outcome.is_not(None), REVIEWS.c.outcome != ReviewOutcome.SKIPPED.value)


def _qualifying(
    reviewer_id: int, candidate: str, route: str, per_pair: int
) -> tuple[Select[Any], FromClause, FromClause]:
    """The ids of the qualifying pairs on ``route``, newest first, and the two arms'
    tables (primary, shadow) to add columns from.

    Qualifying: both arms answered with text, the exchange not yet shown to this reviewer
    (for any candidate: the same conversation and primary answer seen twice would hint
    that the other answer changed hands), and this candidate's pair decided by fewer
    than ``per_pair`` people.
    """
    e = EXCHANGES
    r = REVIEWS.alias("r")
    joined, primary, shadow = pair_join(candidate)
    seen = select(r.c.id).where(r.c.exchange_id == e.c.id, r.c.reviewer_id == reviewer_id)
    decided = (
        select(func.count())
        .select_from(REVIEWS)
        .where(REVIEWS.c.exchange_id == e.c.id, REVIEWS.c.candidate == candidate, _counted())
        .scalar_subquery()
    )
    query = (
        select(e.c.id)
        .select_from(joined)
        .where(
            took_part(candidate),
            e.c.route == route,
            answered(primary),
            answered(shadow),
            ~seen.exists(),
            decided < per_pair,
        )
        # Walks ix_exchanges_route_created_at newest first and stops at a LIMIT.
        .order_by(e.c.created_at.desc())
    )
    return query, primary, shadow


async def eligible_pairs(
    db: Database, reviewer_id: int, candidate: str, route: str, *, per_pair: int, limit: int
) -> list[EligiblePair]:
    """Up to ``limit`` of the newest qualifying pairs on ``route`` (see ``_qualifying``)."""
    e, j = EXCHANGES.c, JUDGMENTS.c
    judge = (
        select(j.outcome)
        # `|| ''` keeps SQLite on the exchange_id index for this look-up.
        .where(j.exchange_id == e.id, j.candidate.concat("") == candidate)
        .order_by(j.created_at.desc(), j.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    ids, primary, shadow = _qualifying(reviewer_id, candidate, route, per_pair)
    query = ids.add_columns(e.route, judge, shadow.c.text, primary.c.text).limit(limit)
    async with db.engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [
        EligiblePair(
            row[0], row[1], PairOutcome(row[2]) if row[2] is not None else None, row[3], row[4]
        )
        for row in rows
    ]


async def count_waiting(
    db: Database,
    reviewer_id: int,
    candidate: str,
    routes: Sequence[str],
    *,
    per_pair: int,
    cap: int,
) -> int:
    """Qualifying pairs left for this reviewer over ``routes``, counted up to ``cap`` each:
    a progress counter, never a walk over every exchange."""
    total = 0
    async with db.engine.connect() as conn:
        for route in routes:
            ids, _, _ = _qualifying(reviewer_id, candidate, route, per_pair)
            counted = select(func.count()).select_from(ids.limit(cap).subquery())
            total += int((await conn.execute(counted)).scalar_one())
    return total


async def routes_reviewed(db: Database, reviewer_id: int) -> dict[str, int]:
    """How many pairs of each route this reviewer has been shown."""
    r = REVIEWS.c
    query = select(r.route, func.count()).where(r.reviewer_id == reviewer_id).group_by(r.route)
    async with db.engine.connect() as conn:
        return {str(route): int(n) for route, n in (await conn.execute(query)).all()}


async def show_pair(
    db: Database,
    reviewer_id: int,
    candidate: str,
    pair: EligiblePair,
    shown_order: str,
    now: datetime,
) -> bool:
    """Record ``pair`` as shown (pending); False when the reviewer was just shown it."""
    values = {
        "id": uuid.uuid4(),
        "item_token": secrets.token_urlsafe(24),
        "reviewer_id": reviewer_id,
        "exchange_id": pair.exchange_id,
        "candidate": candidate,
        "route": pair.route,
        "shown_order": shown_order,
        "shown_at": now,
        "created_at": now,
    }
    try:
        async with db.engine.begin() as conn:
            await conn.execute(REVIEWS.insert().values(**values))
    except IntegrityError:
        return False  # another tab of the same reviewer took it first
    return True


async def pending_item(db: Database, reviewer_id: int) -> PendingItem | None:
    """The pair most recently shown to this reviewer and not decided yet."""
    r = REVIEWS.c
    query = (
        select(r.item_token, r.shown_order, r.exchange_id, r.candidate)
        .where(r.reviewer_id == reviewer_id, r.outcome.is_(None))
        .order_by(r.shown_at.desc())
        .limit(1)
    )
    async with db.engine.connect() as conn:
        found = (await conn.execute(query)).first()
        if found is None:
            return None
        token, order, exchange_id, candidate = found
        joined, primary, shadow = pair_join(candidate)
        e = EXCHANGES.c
        texts = (
            await conn.execute(
                select(e.request, shadow.c.text, primary.c.text)
                .select_from(joined)
                .where(e.id == exchange_id)
            )
        ).first()
    if texts is None:
        return None
    return PendingItem(token, order, texts[0], texts[1] or "", texts[2] or "")


async def decide(
    db: Database,
    reviewer_id: int,
    token: str,
    outcome: ReviewOutcome,
    note: str | None,
    now: datetime,
) -> bool:
    """Record the reviewer's decision on their pending item; False when there is none."""
    r = REVIEWS.c
    async with db.engine.begin() as conn:
        shown_at = (
            await conn.execute(
                select(r.shown_at).where(
                    r.item_token == token, r.reviewer_id == reviewer_id, r.outcome.is_(None)
                )
            )
        ).scalar_one_or_none()
        if shown_at is None:
            return False
        taken_ms = max(0.0, (now - shown_at).total_seconds() * 1000.0)
        await conn.execute(
            update(REVIEWS)
            .where(r.item_token == token, r.reviewer_id == reviewer_id, r.outcome.is_(None))
            .values(outcome=outcome.value, note=note, decided_at=now, time_taken_ms=taken_ms)
        )
    return True


async def undo_last(db: Database, reviewer_id: int, now: datetime) -> bool:
    """Put the reviewer's latest decision back to pending (it is shown again next)."""
    r = REVIEWS.c
    async with db.engine.begin() as conn:
        last = (
            await conn.execute(
                select(r.id)
                .where(r.reviewer_id == reviewer_id, r.decided_at.is_not(None))
                .order_by(r.decided_at.desc())
                .limit(1)
            )
        ).scalar_one_or_none()
        if last is None:
            return False
        await conn.execute(
            update(REVIEWS)
            .where(r.id == last)
            .values(outcome=None, note=None, decided_at=None, time_taken_ms=None, shown_at=now)
        )
    return True


async def decided_count(db: Database, reviewer_id: int) -> int:
    """Pairs this reviewer has decided, skips not counted."""
    query = (
        select(func.count())
        .select_from(REVIEWS)
        .where(REVIEWS.c.reviewer_id == reviewer_id, _counted())
    )
    async with db.engine.connect() as conn:
        return int((await conn.execute(query)).scalar_one())


async def pending_order(db: Database, reviewer_id: int, token: str) -> str | None:
    """The shown order of this reviewer's pending item ``token``; None when it is not one."""
    r = REVIEWS.c
    query = select(r.shown_order).where(
        r.item_token == token, r.reviewer_id == reviewer_id, r.outcome.is_(None)
    )
    async with db.engine.connect() as conn:
        return (await conn.execute(query)).scalar_one_or_none()
