"""Columns for reports, read straight from SQL into numpy arrays.

A report over a million exchanges must not build a Python object per
exchange: one SQL Core select joins each exchange to its arms by role and
yields plain tuples, which are turned into arrays a partition at a time.
Works on SQLite and PostgreSQL.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import (
    ColumnElement,
    Float,
    Integer,
    Select,
    String,
    Table,
    and_,
    case,
    cast,
    func,
    or_,
    select,
    type_coerce,
)
from sqlalchemy.engine import Connection
from sqlalchemy.sql.selectable import FromClause

from core import Role, RolloutMode, Route
from storage.database import Database
from storage.models import ExchangeRow, JudgementRow, ObservationRow

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
IntArray = NDArray[np.int64]

_EXCHANGES: Table = ExchangeRow.__table__  # type: ignore[assignment]
_OBSERVATIONS: Table = ObservationRow.__table__  # type: ignore[assignment]
_JUDGEMENTS: Table = JudgementRow.__table__  # type: ignore[assignment]

# Rows converted to arrays at a time: bounds the Python tuples alive at once.
PARTITION_ROWS = 50_000
TEXT_SAMPLE_CAP = 2_000
_UNIX_EPOCH_JULIAN_DAY = 2440587.5
_OUTCOME_CODES = {"candidate": 1, "primary": -1, "tie": 0}


@dataclass(frozen=True, slots=True)
class ReportWindow:
    """Which exchanges a report covers. ``since`` is inclusive, ``until`` exclusive."""

    candidate: str
    since: datetime | None = None
    until: datetime | None = None
    route: Route | None = None


@dataclass(frozen=True, slots=True)
class ArmArrays:
    """One arm's measurements, one entry per row; unknown numbers are NaN."""

    latency_ms: FloatArray
    ttft_ms: FloatArray
    failed: BoolArray  # an error kind, no status, or a status >= 400
    prompt_tokens: FloatArray
    cached_tokens: FloatArray
    completion_tokens: FloatArray


@dataclass(frozen=True, slots=True)
class ShadowArrays:
    """Row i of both arms is the same exchange; rows in arrival order."""

    primary: ArmArrays
    candidate: ArmArrays
    time_s: FloatArray  # arrival, seconds since the Unix epoch
    exchange_ids: tuple[Any, ...]  # driver values of the ids, to find rows again

    def __len__(self) -> int:
        return int(self.time_s.size)


@dataclass(frozen=True, slots=True)
class SplitArrays:
    """One row per exchange made while the candidate served a share of users."""

    served: ArmArrays
    is_candidate: BoolArray  # the subject was assigned to the candidate
    user: IntArray  # a dense integer per subject hash
    time_s: FloatArray
    exchange_ids: tuple[Any, ...]

    def __len__(self) -> int:
        return int(self.time_s.size)


@dataclass(frozen=True, slots=True)
class JudgementArrays:
    """One judgement per judged row: +1 candidate preferred, -1 primary, 0 tie."""

    rows: IntArray  # non-decreasing
    codes: FloatArray


@dataclass(frozen=True, slots=True)
class TextPairs:
    """Answer texts of a seeded random sample of rows, ordered by row."""

    rows: IntArray
    candidate: tuple[str, ...]
    primary: tuple[str, ...]
    noise: tuple[str | None, ...]  # the primary's second answer, where one was recorded


@dataclass(frozen=True, slots=True)
class SeenNames:
    """The most frequent names in a sample of pairs, for titles and price look-ups."""

    primary_upstream: str | None = None
    primary_model: str | None = None  # as sent to the upstream, e.g. a dated snapshot
    candidate_model: str | None = None
    requested_model: str | None = None


@dataclass(frozen=True, slots=True)
class PairSample:
    texts: TextPairs
    names: SeenNames


# ---- SQL pieces -------------------------------------------------------------------------------


def _epoch_seconds(dialect: str, column: ColumnElement[Any]) -> ColumnElement[float]:
    if dialect == "sqlite":
        # SQLite keeps naive UTC text; julianday parses it to millisecond precision.
        return (func.julianday(column) - _UNIX_EPOCH_JULIAN_DAY) * 86400.0
    # EXTRACT gives numeric on PostgreSQL 14+; a double converts without Decimal objects.
    return cast(func.extract("epoch", column), Float)


def _failed(arm: FromClause) -> ColumnElement[int | None]:
    """The negation of ``core.Observation.ok`` as 0/1; NULL when an outer join found no arm."""
    bad = or_(arm.c.error_kind.is_not(None), arm.c.status.is_(None), arm.c.status >= 400)
    return case((arm.c.exchange_id.is_(None), None), (bad, 1), else_=0)


def _arm_columns(arm: FromClause) -> list[ColumnElement[Any]]:
    return [
        arm.c.latency_ms,
        arm.c.ttft_ms,
        _failed(arm),
        arm.c.prompt_tokens,
        arm.c.cached_tokens,
        arm.c.completion_tokens,
    ]


def _window_conditions(window: ReportWindow) -> list[ColumnElement[bool]]:
    e = _EXCHANGES.c
    where: list[ColumnElement[bool]] = []
    if window.since is not None:
        where.append(e.created_at >= window.since)
    if window.until is not None:
        where.append(e.created_at < window.until)
    if window.route is not None:
        where.append(e.route == window.route.value)
    return where


def _raw_id() -> ColumnElement[Any]:
    # Skip the Uuid result processor: a million uuid.UUID objects cost a second.
    return type_coerce(_EXCHANGES.c.id, String)


def _pair_join(candidate: str, *, outer: bool = False) -> tuple[FromClause, FromClause, FromClause]:
    """exchanges joined to its served primary arm and the candidate's shadow arm.

    ``outer`` joins keep exchanges lacking an arm (drop them afterwards): SQLite
    never reorders a LEFT JOIN, so it walks exchanges in ``created_at`` order and
    finds the arms by primary key, where an inner join lets its planner start
    from the observations and visit exchanges at random (half again as slow on
    a million rows). PostgreSQL plans either as hash joins.
    """
    e = _EXCHANGES
    primary = _OBSERVATIONS.alias("p")
    shadow = _OBSERVATIONS.alias("c")
    # `|| ''`: without statistics SQLite would look arms up through the role index
    # (a million entries per value) instead of the primary key.
    on_primary = and_(
        primary.c.exchange_id == e.c.id,
        primary.c.role.concat("") == Role.SERVED.value,
        primary.c.upstream != candidate,
    )
    on_shadow = and_(
        shadow.c.exchange_id == e.c.id,
        shadow.c.role.concat("") == Role.SHADOW.value,
        shadow.c.upstream == candidate,
    )
    joined = e.join(primary, on_primary, isouter=outer).join(shadow, on_shadow, isouter=outer)
    return joined, primary, shadow


def _pairs_where(window: ReportWindow) -> list[ColumnElement[bool]]:
    # `|| ''` keeps SQLite off the candidate index, which would cost a sort of every
    # row; the created_at index gives the arrival order for free.
    return [_EXCHANGES.c.candidate.concat("") == window.candidate, *_window_conditions(window)]


def _split_where(window: ReportWindow) -> list[ColumnElement[bool]]:
    e = _EXCHANGES.c
    # A split exchange served by the primary names no candidate unless it was mirrored,
    # so NULL counts too. As one expression no index can serve, it also keeps SQLite
    # walking the created_at index instead of sorting every row.
    return [
        e.mode == RolloutMode.SPLIT.value,
        func.coalesce(e.candidate, window.candidate) == window.candidate,
        *_window_conditions(window),
    ]


def _ordered(query: Select[Any]) -> Select[Any]:
    return query.order_by(_EXCHANGES.c.created_at, _EXCHANGES.c.id)


# ---- reading columns --------------------------------------------------------------------------


@dataclass(slots=True)
class _Columns:
    """What one select returned: ``numeric`` float columns, then text columns as lists."""

    numeric: list[FloatArray]
    text: list[list[Any]]

    def keep(self, mask: BoolArray | None) -> _Columns:
        if mask is None:
            return self
        picked = np.flatnonzero(mask)
        return _Columns(
            [column[mask] for column in self.numeric],
            [[values[i] for i in picked] for values in self.text],
        )


def _fetch(sync_conn: Connection, query: Select[Any], numeric: int) -> _Columns:
    """Run one select on the driver's own server-side cursor, converting rows as they come.

    Rows arrive as the driver's plain tuples, skipping SQLAlchemy's per-row
    result handling (a fifth of the time on a million rows); nothing here needs
    it, since every column is a number or text. Values are compiled into the
    SQL as literals, escaped by SQLAlchemy, so that no driver-specific
    parameter handling is needed either.
    """
    sql = str(query.compile(dialect=sync_conn.dialect, compile_kwargs={"literal_binds": True}))
    driver: Any = sync_conn.connection.dbapi_connection
    cursor = driver.cursor(server_side=True)
    numbers: list[FloatArray] = []
    texts: list[list[list[Any]]] = []
    try:
        cursor.execute(sql)
        while rows := cursor.fetchmany(PARTITION_ROWS):
            if not isinstance(rows[0], tuple):  # asyncpg's Record
                rows = [tuple(row) for row in rows]
            # One 2-D object array, then one cast: twice as fast as a cast per column.
            block = np.array(rows, dtype=object)
            numbers.append(block[:, :numeric].astype(np.float64))  # None becomes NaN
            texts.append([block[:, i].tolist() for i in range(numeric, block.shape[1])])
    finally:
        cursor.close()
    if not numbers:
        return _Columns([np.empty(0, dtype=np.float64) for _ in range(numeric)], [])
    table = np.concatenate(numbers)
    width = len(texts[0])
    return _Columns(
        [np.ascontiguousarray(table[:, i]) for i in range(numeric)],
        [[v for part in texts for v in part[i]] for i in range(width)],
    )


async def _read(db: Database, query: Select[Any], numeric: int) -> _Columns:
    async with db.engine.connect() as conn:
        return await conn.run_sync(_fetch, query, numeric)


def _arm(columns: Sequence[FloatArray]) -> ArmArrays:
    latency, ttft, failed, prompt, cached, completion = columns
    return ArmArrays(latency, ttft, failed.astype(np.bool_), prompt, cached, completion)


def _found(failed: FloatArray) -> BoolArray | None:
    """Rows where the outer join found the arm (``failed`` not NULL); None when all."""
    found = ~np.isnan(failed)
    return None if bool(found.all()) else found


def _shadow_query(dialect: str, window: ReportWindow) -> Select[Any]:
    joined, primary, shadow = _pair_join(window.candidate, outer=True)
    return _ordered(
        select(
            *_arm_columns(primary),
            *_arm_columns(shadow),
            _epoch_seconds(dialect, _EXCHANGES.c.created_at),
            _raw_id(),
        )
        .select_from(joined)
        .where(*_pairs_where(window))
    )


async def load_shadow_columns(db: Database, window: ReportWindow) -> ShadowArrays:
    """Every shadow pair of the candidate in the window, in arrival order."""
    read = await _read(db, _shadow_query(db.dialect, window), 13)
    # Failed is NULL where the outer join found no arm: those rows are not pairs.
    read = read.keep(_found(read.numeric[2] + read.numeric[8]))
    columns = read.numeric
    return ShadowArrays(
        primary=_arm(columns[:6]),
        candidate=_arm(columns[6:12]),
        time_s=columns[12],
        exchange_ids=tuple(read.text[0]) if read.text else (),
    )


def _split_query(dialect: str, window: ReportWindow) -> Select[Any]:
    e = _EXCHANGES
    served = _OBSERVATIONS.alias("s")
    on_served = and_(served.c.exchange_id == e.c.id, served.c.role.concat("") == Role.SERVED.value)
    failed = case(
        (served.c.exchange_id.is_(None), None),
        (or_(e.c.fallback, _failed(served) == 1), 1),
        else_=0,
    )
    return _ordered(
        select(
            served.c.latency_ms,
            served.c.ttft_ms,
            failed,
            served.c.prompt_tokens,
            served.c.cached_tokens,
            served.c.completion_tokens,
            cast(e.c.served_is_candidate, Integer),
            _epoch_seconds(dialect, e.c.created_at),
            _raw_id(),
            e.c.subject_hash,
        )
        .select_from(e.outerjoin(served, on_served))
        .where(*_split_where(window))
    )


async def load_split_columns(db: Database, window: ReportWindow) -> SplitArrays:
    """The served arm of every split-mode exchange in the window, in arrival order.

    Rows are counted by assignment: a fallback (the candidate was chosen, failed
    before its first byte and the primary answered) is a failed candidate row,
    so the candidate's errors cannot hide behind the primary.
    """
    read = await _read(db, _split_query(db.dialect, window), 8)
    read = read.keep(_found(read.numeric[2]))
    columns = read.numeric
    ids, subjects = read.text if read.text else ([], [])
    _, users = np.unique(np.array(subjects, dtype=object), return_inverse=True)
    return SplitArrays(
        served=_arm(columns[:6]),
        is_candidate=columns[6].astype(np.bool_),
        user=users.astype(np.int64).reshape(-1),
        time_s=columns[7],
        exchange_ids=tuple(ids),
    )


# ---- what is there ----------------------------------------------------------------------------


async def candidates_in(
    db: Database,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    route: Route | None = None,
) -> list[str]:
    """The candidates named by exchanges in the window, most frequent first."""
    e = _EXCHANGES.c
    window = ReportWindow(candidate="", since=since, until=until, route=route)
    query = (
        select(e.candidate, func.count())
        .where(e.candidate.is_not(None), *_window_conditions(window))
        .group_by(e.candidate)
        .order_by(func.count().desc(), e.candidate)
    )
    async with db.engine.connect() as conn:
        return [str(name) for name, _ in (await conn.execute(query)).all()]


# ---- judgements -------------------------------------------------------------------------------


def _id_key(value: Any) -> str:
    """One spelling for an id whatever the driver returned (hex text, uuid, asyncpg UUID)."""
    return uuid.UUID(str(value)).hex


async def load_judgements(
    db: Database,
    window: ReportWindow,
    exchange_ids: Sequence[Any],
    *,
    judge_model: str | None = None,
    prompt_version: str | None = None,
) -> JudgementArrays:
    """The candidate's judgements on these rows (``exchange_ids`` from a column load).

    A pair judged more than once counts once, by its newest judgement, so a
    re-run with another judge model does not double the sample.
    """
    j, e = _JUDGEMENTS.c, _EXCHANGES.c
    query = (
        select(type_coerce(j.exchange_id, String), j.outcome)
        .select_from(_JUDGEMENTS.join(_EXCHANGES, e.id == j.exchange_id))
        .where(j.candidate == window.candidate, *_window_conditions(window))
        .order_by(j.created_at, j.id)
    )
    if judge_model is not None:
        query = query.where(j.judge_model == judge_model)
    if prompt_version is not None:
        query = query.where(j.prompt_version == prompt_version)
    async with db.engine.connect() as conn:
        found = (await conn.execute(query)).all()
    if not found:
        return JudgementArrays(np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64))
    # Both reads coerce ids the same way, so str() spellings match without parsing
    # a million UUIDs; later judgements overwrite earlier ones.
    latest = {str(exchange_id): _OUTCOME_CODES[outcome] for exchange_id, outcome in found}
    rows: list[int] = []
    codes: list[int] = []
    for row, exchange_id in enumerate(exchange_ids):
        code = latest.get(str(exchange_id))
        if code is not None:
            rows.append(row)
            codes.append(code)
    return JudgementArrays(np.array(rows, dtype=np.int64), np.array(codes, dtype=np.float64))


# ---- text sample ------------------------------------------------------------------------------


def sample_rows(n: int, cap: int = TEXT_SAMPLE_CAP, seed: int = 0) -> IntArray:
    """A seeded sample of ``min(n, cap)`` distinct rows, sorted."""
    if n <= 0 or cap <= 0:
        return np.empty(0, dtype=np.int64)
    rng = np.random.default_rng(seed)
    picked = rng.choice(n, size=min(n, cap), replace=False)
    return np.sort(picked).astype(np.int64)


async def sample_pairs(
    db: Database,
    window: ReportWindow,
    exchange_ids: Sequence[Any],
    *,
    cap: int = TEXT_SAMPLE_CAP,
    seed: int = 0,
) -> PairSample:
    """Texts and names of a seeded sample of shadow-pair rows (ids from a column load).

    Rows where either answer has no text (failed, embeddings, or responses not
    stored) are left out of the texts, so they may be fewer than ``cap``.
    """
    rows = sample_rows(len(exchange_ids), cap, seed)
    by_key = {_id_key(exchange_ids[int(r)]): int(r) for r in rows}
    wanted = [uuid.UUID(key) for key in by_key]
    joined, primary, shadow = _pair_join(window.candidate)
    noise = _OBSERVATIONS.alias("n")
    joined = joined.outerjoin(
        noise,
        and_(noise.c.exchange_id == _EXCHANGES.c.id, noise.c.role.concat("") == Role.NOISE.value),
    )
    columns = (
        _raw_id(),
        shadow.c.text,
        primary.c.text,
        noise.c.text,
        primary.c.upstream,
        primary.c.model,
        shadow.c.model,
        _EXCHANGES.c.requested_model,
    )
    found: list[Any] = []
    async with db.engine.connect() as conn:
        # Bounded IN lists: both drivers cap the parameters of one statement.
        for start in range(0, len(wanted), 1000):
            chunk = wanted[start : start + 1000]
            query = select(*columns).select_from(joined).where(_EXCHANGES.c.id.in_(chunk))
            found += (await conn.execute(query)).all()
    found.sort(key=lambda r: by_key[_id_key(r[0])])
    texts = [r for r in found if r[1] is not None and r[2] is not None]
    return PairSample(
        texts=TextPairs(
            rows=np.array([by_key[_id_key(r[0])] for r in texts], dtype=np.int64),
            candidate=tuple(r[1] for r in texts),
            primary=tuple(r[2] for r in texts),
            noise=tuple(r[3] for r in texts),
        ),
        names=SeenNames(
            primary_upstream=_most_common([r[4] for r in found]),
            primary_model=_most_common([r[5] for r in found]),
            candidate_model=_most_common([r[6] for r in found]),
            requested_model=_most_common([r[7] for r in found]),
        ),
    )


def _most_common(values: Sequence[str]) -> str | None:
    return Counter(values).most_common(1)[0][0] if values else None


async def split_primary_upstream(db: Database, window: ReportWindow) -> str | None:
    """The upstream that served the primary's side of split exchanges, if any did."""
    e = _EXCHANGES.c
    query = (
        select(e.served_by).where(*_split_where(window), e.served_by != window.candidate).limit(1)
    )
    async with db.engine.connect() as conn:
        found = (await conn.execute(query)).first()
    return None if found is None else str(found[0])
