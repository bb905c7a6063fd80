"""A window's stamp: a few counts and maxima that change whenever its report could.

Reading it costs one indexed aggregate per table, against seconds of statistics for
the report itself, so a report is rebuilt only when its window's stamp has moved.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from storage.database import Database
from storage.models import ExchangeRow, JudgmentRow, ReviewRow
from storage.window import ExchangeWindow


@dataclass(frozen=True, slots=True)
class WindowStamp:
    exchanges: int
    last_exchange_at: datetime | None
    judgments: int
    last_judgment_at: datetime | None
    reviews: int  # decided ones
    last_review_at: datetime | None


async def window_stamp(db: Database, window: ExchangeWindow) -> WindowStamp:
    """The stamp of every exchange in the window's time, route and flag versions, whatever
    its candidate (split rows the primary served name none), and of the window candidate's
    judgments and people's decided reviews on them. Read before the report's data, it can only be older than the report:
    at worst one rebuild too many, never a stale report."""
    e, j, r = ExchangeRow, JudgmentRow, ReviewRow
    where = window.conditions()
    candidate = window.named_candidate
    exchanges = select(func.count(), func.max(e.created_at)).where(*where)
    judgments = (
        select(func.count(), func.max(j.created_at))
        .select_from(j)
        .join(e, e.id == j.exchange_id)
        .where(j.candidate == candidate, *where)
    )
    reviews = (
        select(func.count(), func.max(r.decided_at))
        .select_from(r)
        .join(e, e.id == r.exchange_id)
        .where(r.candidate == candidate, r.decided_at.is_not(None), *where)
    )
    async with db.engine.connect() as conn:
        n_exchanges, last_exchange = (await conn.execute(exchanges)).one()
        n_judgments, last_judgment = (await conn.execute(judgments)).one()
        n_reviews, last_review = (await conn.execute(reviews)).one()
    return WindowStamp(
        int(n_exchanges),
        last_exchange,
        int(n_judgments),
        last_judgment,
        int(n_reviews),
        last_review,
    )
