"""LLM-judge results: stored and read here, computed by the evaluation package."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from core.outcome import PairOutcome
from storage.database import Database
from storage.inserts import insert_ignoring_duplicates
from storage.models import JudgmentRow


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Judgment:
    """Which answer of a pair the judge preferred."""

    exchange_id: uuid.UUID
    candidate: str
    judge_model: str
    prompt_version: str
    outcome: PairOutcome
    detail: Mapping[str, Any] | None = None
    created_at: datetime = field(default_factory=_now)
    id: uuid.UUID = field(default_factory=uuid.uuid4)

    def __post_init__(self) -> None:
        # A plain string is accepted when it names an outcome; anything else is refused.
        try:
            object.__setattr__(self, "outcome", PairOutcome(self.outcome))
        except ValueError:
            names = ", ".join(o.value for o in PairOutcome)
            raise ValueError(f"outcome must be one of {names}, not {self.outcome!r}") from None


async def add_judgments(db: Database, judgments: Sequence[Judgment]) -> None:
    """Store judgments; one already stored (same id) is left as it is."""
    if not judgments:
        return
    rows = [
        {
            "id": j.id,
            "exchange_id": j.exchange_id,
            "candidate": j.candidate,
            "judge_model": j.judge_model,
            "prompt_version": j.prompt_version,
            "outcome": j.outcome.value,
            "created_at": j.created_at,
            "detail": dict(j.detail) if j.detail is not None else None,
        }
        for j in judgments
    ]
    async with db.engine.begin() as conn:
        table = JudgmentRow.__table__
        await conn.execute(insert_ignoring_duplicates(db.dialect, table), rows)  # type: ignore[arg-type]


async def list_judgments(
    db: Database,
    *,
    exchange_id: uuid.UUID | None = None,
    candidate: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    judge_model: str | None = None,
    prompt_version: str | None = None,
) -> list[Judgment]:
    """Judgments matching every filter given, oldest first."""
    query = select(JudgmentRow).order_by(JudgmentRow.created_at, JudgmentRow.id)
    if exchange_id is not None:
        query = query.where(JudgmentRow.exchange_id == exchange_id)
    if candidate is not None:
        query = query.where(JudgmentRow.candidate == candidate)
    if since is not None:
        query = query.where(JudgmentRow.created_at >= since)
    if until is not None:
        query = query.where(JudgmentRow.created_at < until)
    if judge_model is not None:
        query = query.where(JudgmentRow.judge_model == judge_model)
    if prompt_version is not None:
        query = query.where(JudgmentRow.prompt_version == prompt_version)
    async with db.sessions() as session:
        rows = (await session.scalars(query)).all()
    return [
        Judgment(
            id=r.id,
            exchange_id=r.exchange_id,
            candidate=r.candidate,
            judge_model=r.judge_model,
            prompt_version=r.prompt_version,
            outcome=PairOutcome(r.outcome),
            detail=r.detail,
            created_at=r.created_at,
        )
        for r in rows
    ]
