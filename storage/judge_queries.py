"""Stored shadow pairs that a judge model and prompt version have not judged yet."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.selectable import FromClause

from storage.database import Database
from storage.report_sql import (
    EXCHANGES,
    JUDGMENTS,
    ordered,
    pair_join,
    pairs_where,
)
from storage.window import ExchangeWindow


@dataclass(frozen=True, slots=True)
class PairToJudge:
    """A shadow pair where both arms answered with text."""

    exchange_id: uuid.UUID
    created_at: datetime
    request: Mapping[str, Any] | None  # the stored request body, None when not kept
    candidate_text: str
    primary_text: str


@dataclass(frozen=True, slots=True)
class JudgeBatch:
    pairs: list[PairToJudge]
    resume_after: tuple[datetime, uuid.UUID] | None  # None: every exchange was looked at


def _answered(arm: FromClause) -> ColumnElement[bool]:
    return and_(arm.c.error_kind.is_(None), arm.c.status < 400, arm.c.text.is_not(None))


async def _exchange_page(
    conn: AsyncConnection,
    window: ExchangeWindow,
    after: tuple[datetime, uuid.UUID] | None,
    size: int,
) -> list[tuple[uuid.UUID, datetime]]:
    e = EXCHANGES.c
    query = ordered(select(e.id, e.created_at).where(*pairs_where(window))).limit(size)
    if after is not None:
        at, last = after
        query = query.where(or_(e.created_at > at, and_(e.created_at == at, e.id > last)))
    return [(row[0], row[1]) for row in (await conn.execute(query)).all()]


def _judged_by(
    window: ExchangeWindow, judge_model: str, prompt_version: str
) -> ColumnElement[bool]:
    e = EXCHANGES
    j = JUDGMENTS.c
    return (
        select(j.id)
        .where(
            j.exchange_id == e.c.id,
            # `|| ''` keeps SQLite on the exchange_id index for this look-up.
            j.candidate.concat("") == window.named_candidate,
            j.judge_model == judge_model,
            j.prompt_version == prompt_version,
        )
        .exists()
    )


def _unjudged_query(
    window: ExchangeWindow, ids: list[uuid.UUID], judge_model: str, prompt_version: str
) -> Select[Any]:
    e = EXCHANGES
    joined, primary, shadow = pair_join(window.named_candidate)
    judged = _judged_by(window, judge_model, prompt_version)
    return ordered(
        select(e.c.id, e.c.created_at, e.c.request, shadow.c.text, primary.c.text)
        .select_from(joined)
        .where(e.c.id.in_(ids), _answered(primary), _answered(shadow), ~judged)
    )


async def unjudged_pairs(
    db: Database,
    window: ExchangeWindow,
    *,
    judge_model: str,
    prompt_version: str,
    after: tuple[datetime, uuid.UUID] | None = None,
    limit: int = 100,
) -> JudgeBatch:
    """Up to ``limit`` answered shadow pairs this judge model and prompt have not judged.

    Oldest first, from just after ``after``. Exchanges are walked a page at a
    time in arrival order and each page's arms found by primary key, which
    keeps every statement cheap on a database of any size; pass the batch's
    ``resume_after`` to continue, so pairs whose judging failed are not
    offered again in the same run.
    """
    found: list[PairToJudge] = []
    page_size = max(2 * limit, 200)
    async with db.engine.connect() as conn:
        while len(found) < limit:
            page = await _exchange_page(conn, window, after, page_size)
            if not page:
                return JudgeBatch(found, None)
            query = _unjudged_query(window, [i for i, _ in page], judge_model, prompt_version)
            for row in (await conn.execute(query)).all():
                found.append(PairToJudge(row[0], row[1], row[2], row[3], row[4]))
                if len(found) == limit:
                    return JudgeBatch(found, (row[1], row[0]))
            after = (page[-1][1], page[-1][0])
    return JudgeBatch(found, after)


async def count_unjudged(
    db: Database, window: ExchangeWindow, *, judge_model: str, prompt_version: str
) -> int:
    """Answered shadow pairs in the window this judge model and prompt have not judged."""
    joined, primary, shadow = pair_join(window.named_candidate)
    query = (
        select(func.count())
        .select_from(joined)
        .where(
            *pairs_where(window),
            _answered(primary),
            _answered(shadow),
            ~_judged_by(window, judge_model, prompt_version),
        )
    )
    async with db.engine.connect() as conn:
        return int((await conn.execute(query)).scalar_one())
