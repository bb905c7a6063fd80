"""The exchange browser's pages: filtered, newest first, paged by keyset on (created_at, id).

A page never scans more than ``scan_cap`` exchanges: a filter that matches few
rows (a rare error, a word in the answers) would otherwise read the whole table
while a page waits. When the cap is reached before a page fills, the page says
that more results may exist and its cursor continues the scan where it stopped.
Text is matched case-insensitively with LIKE on every arm's answer: no index
helps a substring search, so its cost is the rows scanned, which the cap bounds.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, func, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.selectable import FromClause

from core import Exchange, Route
from storage.codec import candidate_of, to_utc
from storage.database import Database
from storage.judgments import Judgment, list_judgments
from storage.models import ReviewerRow, ReviewRow
from storage.report_sql import EXCHANGES, OBSERVATIONS, pair_join
from storage.repository import get_exchange

PAGE_SIZE = 50
SCAN_CAP = 10_000  # exchanges one filtered page may read


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a page ends: the next page starts strictly older than this exchange."""

    created_at: datetime
    id: uuid.UUID

    def encode(self) -> str:
        return f"{self.created_at.isoformat()}_{self.id.hex}"

    @classmethod
    def decode(cls, text: str) -> Cursor:
        """Raises ValueError on anything ``encode`` did not write."""
        at, sep, ident = text.rpartition("_")
        if not sep:
            raise ValueError("a cursor is a time and an id joined by '_'")
        created_at = datetime.fromisoformat(at)
        if created_at.tzinfo is None:
            raise ValueError("a cursor's time carries its timezone")
        return cls(to_utc(created_at), uuid.UUID(hex=ident))


@dataclass(frozen=True, slots=True)
class BrowserFilter:
    """Which exchanges to list; an unset field does not narrow the list."""

    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive
    route: Route | None = None
    model: str | None = None  # the model asked for, or one an arm answered with
    served_by: str | None = None  # the upstream whose answer the client got
    status: int | None = None  # an arm's HTTP status
    error_kind: str | None = None  # an arm's error kind
    fallback: bool | None = None
    text: str | None = None  # in an arm's answer, any case

    @property
    def narrows(self) -> bool:
        """True when rows are filtered beyond time: the scan must then be capped."""
        fields = (self.route, self.model, self.served_by, self.status, self.error_kind)
        return any(v is not None for v in (*fields, self.fallback)) or bool(self.text)


@dataclass(frozen=True, slots=True)
class ArmSummary:
    role: str
    upstream: str
    model: str
    status: int | None
    error_kind: str | None
    latency_ms: float | None
    ttft_ms: float | None


@dataclass(frozen=True, slots=True)
class ExchangeSummary:
    id: uuid.UUID
    created_at: datetime
    route: str
    requested_model: str
    mode: str
    served_by: str
    fallback: bool
    candidate: str | None
    arms: tuple[ArmSummary, ...]  # in recorded order


@dataclass(frozen=True, slots=True)
class BrowserPage:
    rows: tuple[ExchangeSummary, ...]
    next_cursor: Cursor | None  # None: nothing older matches
    # True when the scan cap stopped the page: more matches may lie past next_cursor.
    more_may_exist: bool
    scanned: int  # exchanges a filtered page that did not fill read; else 0


def _time_conditions(f: BrowserFilter, after: Cursor | None) -> list[ColumnElement[bool]]:
    e = EXCHANGES.c
    where: list[ColumnElement[bool]] = []
    if f.since is not None:
        where.append(e.created_at >= f.since)
    if f.until is not None:
        where.append(e.created_at < f.until)
    if after is not None:
        where.append(tuple_(e.created_at, e.id) < tuple_(after.created_at, after.id))
    return where


def _arm_has(source: FromClause, condition: ColumnElement[bool]) -> ColumnElement[bool]:
    """An arm of the row matches: probed row by row through the observations' key.

    A scalar subquery with LIMIT, not EXISTS: PostgreSQL turns EXISTS into a semi-join
    and reads the whole observations table for it, whatever the scan cap.
    """
    o = OBSERVATIONS.c
    probe = select(o.position).where(o.exchange_id == source.c.id, condition).limit(1)
    return probe.scalar_subquery().is_not(None)


def _filter_conditions(f: BrowserFilter, e: FromClause) -> list[ColumnElement[bool]]:
    """The filters beyond time, on ``e``: the exchanges table or a scan of it."""
    o = OBSERVATIONS.c
    where: list[ColumnElement[bool]] = []
    if f.route is not None:
        where.append(e.c.route == f.route.value)
    if f.model is not None:
        where.append(or_(e.c.requested_model == f.model, _arm_has(e, o.model == f.model)))
    if f.served_by is not None:
        where.append(e.c.served_by == f.served_by)
    if f.fallback is not None:
        where.append(e.c.fallback == f.fallback)
    if f.status is not None:
        where.append(_arm_has(e, o.status == f.status))
    if f.error_kind is not None:
        where.append(_arm_has(e, o.error_kind == f.error_kind))
    if f.text:
        where.append(_arm_has(e, o.text.icontains(f.text, autoescape=True)))
    return where


_SUMMARY = (
    EXCHANGES.c.id,
    EXCHANGES.c.created_at,
    EXCHANGES.c.route,
    EXCHANGES.c.requested_model,
    EXCHANGES.c.mode,
    EXCHANGES.c.served_by,
    EXCHANGES.c.fallback,
    EXCHANGES.c.candidate,
)


def _newest_first(query: Select[Any], e: FromClause = EXCHANGES) -> Select[Any]:
    return query.order_by(e.c.created_at.desc(), e.c.id.desc())


def _scan(f: BrowserFilter, after: Cursor | None, cap: int) -> Any:
    """The next ``cap`` exchanges in the time range, newest first: all a page may read.

    It carries every column the page shows or filters on, so nothing joins back to
    the table (PostgreSQL would hash-join the whole of it).
    """
    query = select(*_SUMMARY).where(*_time_conditions(f, after))
    return _newest_first(query).limit(cap).subquery("scan")


async def _arms(conn: AsyncConnection, ids: list[uuid.UUID]) -> dict[uuid.UUID, list[ArmSummary]]:
    o = OBSERVATIONS.c
    query = (
        select(o.exchange_id, o.role, o.upstream, o.model, o.status, o.error_kind)
        .add_columns(o.latency_ms, o.ttft_ms)
        .where(o.exchange_id.in_(ids))
        .order_by(o.exchange_id, o.position)
    )
    found: dict[uuid.UUID, list[ArmSummary]] = defaultdict(list)
    for exchange_id, *arm in (await conn.execute(query)).all():
        found[exchange_id].append(ArmSummary(*arm))
    return found


async def browse(
    db: Database,
    f: BrowserFilter,
    *,
    after: Cursor | None = None,
    page_size: int = PAGE_SIZE,
    scan_cap: int = SCAN_CAP,
) -> BrowserPage:
    """One page of matching exchanges older than ``after``, newest first."""
    if page_size < 1 or scan_cap < page_size:
        raise ValueError("a page holds at least one row and the scan cap at least a page")
    async with db.engine.connect() as conn:
        if f.narrows:
            scan = _scan(f, after, scan_cap)
            query = select(scan).where(*_filter_conditions(f, scan))
            query = _newest_first(query, scan)
        else:
            query = _newest_first(select(*_SUMMARY).where(*_time_conditions(f, after)))
        rows = (await conn.execute(query.limit(page_size + 1))).all()
        full = len(rows) > page_size
        rows = rows[:page_size]
        arms = await _arms(conn, [r[0] for r in rows])
        scanned, next_cursor, more = 0, None, False
        if full:
            next_cursor = Cursor(rows[-1][1], rows[-1][0])
        if f.narrows and not full:
            scanned, last = await _scan_extent(conn, f, after, scan_cap)
            if scanned == scan_cap and last is not None:
                # The cap stopped the scan: continue from the last exchange it read.
                next_cursor, more = last, True
    summaries = tuple(
        ExchangeSummary(**row._mapping, arms=tuple(arms.get(row[0], ()))) for row in rows
    )
    return BrowserPage(summaries, next_cursor, more, scanned)


async def _scan_extent(
    conn: AsyncConnection, f: BrowserFilter, after: Cursor | None, cap: int
) -> tuple[int, Cursor | None]:
    """How many exchanges the page's scan read, and the oldest of them."""
    scan = _scan(f, after, cap)
    scanned = int((await conn.execute(select(func.count()).select_from(scan))).scalar_one())
    oldest = select(scan.c.created_at, scan.c.id).order_by(scan.c.created_at, scan.c.id)
    row = (await conn.execute(oldest.limit(1))).first()
    return scanned, None if row is None else Cursor(row[0], row[1])


# ---- detail -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReviewEntry:
    """One person's decided review of the pair (skips included, pending ones not)."""

    reviewer: str
    outcome: str
    shown_order: str
    time_taken_ms: float | None
    note: str | None
    decided_at: datetime


@dataclass(frozen=True, slots=True)
class ExchangeDetail:
    """One exchange with its arms, which of them form the candidate-vs-primary pair, and
    the judge's verdicts and people's reviews of that pair (oldest first)."""

    exchange: Exchange
    candidate: str | None  # whose pair with the primary this is
    primary_position: int | None  # index into exchange.observations; None: no such arm
    candidate_position: int | None
    judgments: tuple[Judgment, ...]
    reviews: tuple[ReviewEntry, ...]


async def _reviews(
    conn: AsyncConnection, exchange_id: uuid.UUID, candidate: str
) -> tuple[ReviewEntry, ...]:
    r, who = ReviewRow.__table__.c, ReviewerRow.__table__.c
    query = (
        select(who.name, r.outcome, r.shown_order, r.time_taken_ms, r.note, r.decided_at)
        .select_from(ReviewRow.__table__.join(ReviewerRow.__table__, who.id == r.reviewer_id))
        .where(r.exchange_id == exchange_id, r.candidate == candidate, r.outcome.is_not(None))
        .order_by(r.decided_at, r.id)
    )
    return tuple(ReviewEntry(*row) for row in (await conn.execute(query)).all())


async def exchange_detail(
    db: Database, exchange_id: uuid.UUID, candidate: str | None = None
) -> ExchangeDetail | None:
    """Everything the detail page shows of ``candidate``'s pair (by default the candidate
    the routing decision names; a shadow candidate beside it has its own); None when no
    exchange has this id."""
    exchange = await get_exchange(db, exchange_id)
    if exchange is None:
        return None
    candidate = candidate or candidate_of(exchange.decision)
    if candidate is None:
        return ExchangeDetail(exchange, None, None, None, (), ())
    joined, primary, shadow = pair_join(candidate, outer=True)
    query = (
        select(primary.c.position, shadow.c.position)
        .select_from(joined)
        .where(EXCHANGES.c.id == exchange_id)
    )
    async with db.engine.connect() as conn:
        primary_position, candidate_position = (await conn.execute(query)).one()
        reviews = await _reviews(conn, exchange_id, candidate)
    judged = await list_judgments(db, exchange_id=exchange_id, candidate=candidate)
    return ExchangeDetail(
        exchange, candidate, primary_position, candidate_position, tuple(judged), reviews
    )
