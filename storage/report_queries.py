"""Columns for reports, read straight from SQL into ``core.columns``.

A report over a million exchanges must not build a Python object per
exchange: one SQL Core select joins each exchange to its arms by role and
yields plain tuples, which are turned into arrays a partition at a time.
Works on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Integer, Select, and_, case, cast, or_, select
from sqlalchemy.engine import Connection

from core import Role
from core.columns import ArmColumns, BoolArray, FloatArray, ShadowColumns, SplitColumns
from storage.database import Database
from storage.report_sql import (
    EXCHANGES,
    OBSERVATIONS,
    arm_columns,
    arm_role,
    epoch_seconds,
    failed_flag,
    ordered,
    pair_join,
    pairs_where,
    raw_id,
    split_where,
)
from storage.window import ExchangeWindow

# Rows converted to arrays at a time: bounds the Python tuples alive at once.
PARTITION_ROWS = 50_000


@dataclass(frozen=True, slots=True)
class LoadedShadow:
    """Shadow pairs in arrival order, with the driver values of their exchange ids."""

    columns: ShadowColumns
    exchange_ids: tuple[Any, ...]  # to find the rows again (judgments, texts)

    def __len__(self) -> int:
        return len(self.columns)


@dataclass(frozen=True, slots=True)
class LoadedSplit:
    """Split-mode exchanges in arrival order, with the driver values of their exchange ids."""

    columns: SplitColumns
    exchange_ids: tuple[Any, ...]

    def __len__(self) -> int:
        return len(self.columns)


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


def _arm(columns: Sequence[FloatArray]) -> ArmColumns:
    latency, ttft, failed, prompt, cached, completion = columns
    return ArmColumns(latency, ttft, failed.astype(np.bool_), prompt, cached, completion)


def _found(failed: FloatArray) -> BoolArray | None:
    """Rows where the outer join found the arm (``failed`` not NULL); None when all."""
    found = ~np.isnan(failed)
    return None if bool(found.all()) else found


def _shadow_query(dialect: str, window: ExchangeWindow) -> Select[Any]:
    joined, primary, shadow = pair_join(window.named_candidate, outer=True)
    return ordered(
        select(
            *arm_columns(primary),
            *arm_columns(shadow),
            epoch_seconds(dialect, EXCHANGES.c.created_at),
            raw_id(),
        )
        .select_from(joined)
        .where(*pairs_where(window))
    )


async def load_shadow_columns(db: Database, window: ExchangeWindow) -> LoadedShadow:
    """Every shadow pair of the candidate in the window, in arrival order."""
    read = await _read(db, _shadow_query(db.dialect, window), 13)
    # Failed is NULL where the outer join found no arm: those rows are not pairs.
    read = read.keep(_found(read.numeric[2] + read.numeric[8]))
    columns = read.numeric
    return LoadedShadow(
        ShadowColumns(primary=_arm(columns[:6]), candidate=_arm(columns[6:12]), time_s=columns[12]),
        exchange_ids=tuple(read.text[0]) if read.text else (),
    )


def _split_query(dialect: str, window: ExchangeWindow) -> Select[Any]:
    e = EXCHANGES
    served = OBSERVATIONS.alias("s")
    on_served = and_(served.c.exchange_id == e.c.id, arm_role(served) == Role.SERVED.value)
    failed = case(
        (served.c.exchange_id.is_(None), None),
        (or_(e.c.fallback, failed_flag(served) == 1), 1),
        else_=0,
    )
    return ordered(
        select(
            served.c.latency_ms,
            served.c.ttft_ms,
            failed,
            served.c.prompt_tokens,
            served.c.cached_tokens,
            served.c.completion_tokens,
            cast(e.c.served_is_candidate, Integer),
            epoch_seconds(dialect, e.c.created_at),
            raw_id(),
            e.c.subject_hash,
        )
        .select_from(e.outerjoin(served, on_served))
        .where(*split_where(window))
    )


async def load_split_columns(db: Database, window: ExchangeWindow) -> LoadedSplit:
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
    return LoadedSplit(
        SplitColumns(
            served=_arm(columns[:6]),
            is_candidate=columns[6].astype(np.bool_),
            user=users.astype(np.int64).reshape(-1),
            time_s=columns[7],
        ),
        exchange_ids=tuple(ids),
    )
