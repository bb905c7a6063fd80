"""LLM-judge results: stored and read here, computed by the evaluation package."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, cast

from sqlalchemy import select

from storage.database import Database
from storage.inserts import insert_ignoring_duplicates
from storage.models import JUDGEMENT_OUTCOMES, JudgementRow

Outcome = Literal["candidate", "primary", "tie"]


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Judgement:
    """Which answer of a pair the judge preferred."""

    exchange_id: uuid.UUID
    candidate: str
    judge_model: str
    prompt_version: str
    outcome: Outcome
    detail: Mapping[str, Any] | None = None
    created_at: datetime = field(default_factory=_now)
    id: uuid.UUID = field(default_factory=uuid.uuid4)

    def __post_init__(self) -> None:
        if self.outcome not in JUDGEMENT_OUTCOMES:
            raise ValueError(f"outcome must be one of {JUDGEMENT_OUTCOMES}, not {self.outcome!r}")


async def add_judgements(db: Database, judgements: Sequence[Judgement]) -> None:
    """Store judgements; one already stored (same id) is left as it is."""
    if not judgements:
        return
    rows = [
        {
            "id": j.id,
            "exchange_id": j.exchange_id,
            "candidate": j.candidate,
            "judge_model": j.judge_model,
            "prompt_version": j.prompt_version,
            "outcome": j.outcome,
            "created_at": j.created_at,
            "detail": dict(j.detail) if j.detail is not None else None,
        }
        for j in judgements
    ]
    async with db.engine.begin() as conn:
        table = JudgementRow.__table__
        await conn.execute(insert_ignoring_duplicates(db.dialect, table), rows)  # type: ignore[arg-type]


async def list_judgements(
    db: Database,
    *,
    exchange_id: uuid.UUID | None = None,
    candidate: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    judge_model: str | None = None,
    prompt_version: str | None = None,
) -> list[Judgement]:
    """Judgements matching every filter given, oldest first."""
    query = select(JudgementRow).order_by(JudgementRow.created_at, JudgementRow.id)
    if exchange_id is not None:
        query = query.where(JudgementRow.exchange_id == exchange_id)
    if candidate is not None:
        query = query.where(JudgementRow.candidate == candidate)
    if since is not None:
        query = query.where(JudgementRow.created_at >= since)
    if until is not None:
        query = query.where(JudgementRow.created_at < until)
    if judge_model is not None:
        query = query.where(JudgementRow.judge_model == judge_model)
    if prompt_version is not None:
        query = query.where(JudgementRow.prompt_version == prompt_version)
    async with db.sessions() as session:
        rows = (await session.scalars(query)).all()
    return [
        Judgement(
            id=r.id,
            exchange_id=r.exchange_id,
            candidate=r.candidate,
            judge_model=r.judge_model,
            prompt_version=r.prompt_version,
            outcome=cast(Outcome, r.outcome),
            detail=r.detail,
            created_at=r.created_at,
        )
        for r in rows
    ]
