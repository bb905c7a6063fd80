"""What else a report reads besides columns: candidates seen, judgments and a text sample."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import String, and_, func, select, type_coerce

from core import Role
from core.columns import FloatArray, IntArray
from core.outcome import PairOutcome
from storage.database import Database
from storage.report_sql import (
    EXCHANGES,
    JUDGMENTS,
    OBSERVATIONS,
    arm_role,
    pair_join,
    raw_id,
    split_where,
)
from storage.window import ExchangeWindow

TEXT_SAMPLE_CAP = 2_000


@dataclass(frozen=True, slots=True)
class JudgmentCodes:
    """One judgment per judged row, as ``PairOutcome.code`` (+1: candidate preferred)."""

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


async def candidates_in(db: Database, window: ExchangeWindow) -> list[str]:
    """The candidates named by exchanges in the window, most frequent first; the window's
    own candidate, if any, does not narrow it."""
    e = EXCHANGES.c
    query = (
        select(e.candidate, func.count())
        .where(e.candidate.is_not(None), *window.conditions())
        .group_by(e.candidate)
        .order_by(func.count().desc(), e.candidate)
    )
    async with db.engine.connect() as conn:
        return [str(name) for name, _ in (await conn.execute(query)).all()]


# ---- judgments ---------------------------------------------------------------------------------


def _id_key(value: Any) -> str:
    """One spelling for an id whatever the driver returned (hex text, uuid, asyncpg UUID)."""
    return uuid.UUID(str(value)).hex


async def load_judgments(
    db: Database,
    window: ExchangeWindow,
    exchange_ids: Sequence[Any],
    *,
    judge_model: str | None = None,
    prompt_version: str | None = None,
) -> JudgmentCodes:
    """The candidate's judgments on these rows (``exchange_ids`` from a column load).

    A pair judged more than once counts once, by its newest judgment, so a
    re-run with another judge model does not double the sample.
    """
    j, e = JUDGMENTS.c, EXCHANGES.c
    query = (
        select(type_coerce(j.exchange_id, String), j.outcome)
        .select_from(JUDGMENTS.join(EXCHANGES, e.id == j.exchange_id))
        .where(j.candidate == window.named_candidate, *window.conditions())
        .order_by(j.created_at, j.id)
    )
    if judge_model is not None:
        query = query.where(j.judge_model == judge_model)
    if prompt_version is not None:
        query = query.where(j.prompt_version == prompt_version)
    async with db.engine.connect() as conn:
        found = (await conn.execute(query)).all()
    if not found:
        return JudgmentCodes(np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64))
    # Both reads coerce ids the same way, so str() spellings match without parsing
    # a million UUIDs; later judgments overwrite earlier ones.
    latest = {str(exchange_id): PairOutcome(outcome).code for exchange_id, outcome in found}
    rows: list[int] = []
    codes: list[int] = []
    for row, exchange_id in enumerate(exchange_ids):
        code = latest.get(str(exchange_id))
        if code is not None:
            rows.append(row)
            codes.append(code)
    return JudgmentCodes(np.array(rows, dtype=np.int64), np.array(codes, dtype=np.float64))


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
    window: ExchangeWindow,
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
    joined, primary, shadow = pair_join(window.named_candidate)
    noise = OBSERVATIONS.alias("n")
    joined = joined.outerjoin(
        noise,
        and_(noise.c.exchange_id == EXCHANGES.c.id, arm_role(noise) == Role.NOISE.value),
    )
    columns = (
        raw_id(),
        shadow.c.text,
        primary.c.text,
        noise.c.text,
        primary.c.upstream,
        primary.c.model,
        shadow.c.model,
        EXCHANGES.c.requested_model,
    )
    found: list[Any] = []
    async with db.engine.connect() as conn:
        # Bounded IN lists: both drivers cap the parameters of one statement.
        for start in range(0, len(wanted), 1000):
            chunk = wanted[start : start + 1000]
            query = select(*columns).select_from(joined).where(EXCHANGES.c.id.in_(chunk))
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


async def split_primary_upstream(db: Database, window: ExchangeWindow) -> str | None:
    """The upstream that served the primary's side of split exchanges, if any did."""
    e = EXCHANGES.c
    query = (
        select(e.served_by)
        .where(*split_where(window), e.served_by != window.named_candidate)
        .limit(1)
    )
    async with db.engine.connect() as conn:
        found = (await conn.execute(query)).first()
    return None if found is None else str(found[0])
