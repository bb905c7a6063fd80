"""Reviewer accounts: invited by name, a password set through the invite, removed by marking.

A removed reviewer keeps their row (their reviews stay counted) but loses their password,
their invite and every session; adding the name again invites them afresh.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select, update

from core.outcome import ReviewOutcome
from storage.database import Database
from storage.models import ReviewerRow, ReviewRow, UiSessionRow


class ReviewerExists(Exception):
    """An active reviewer already has this name."""


@dataclass(frozen=True, slots=True)
class ReviewerSummary:
    name: str
    signed_up: bool  # a password was set through the invite
    invite_expires_at: datetime | None  # an unused invite's end
    created_at: datetime
    reviews: int  # decided, skips not counted
    last_review_at: datetime | None


async def add_reviewer(
    db: Database, name: str, invite_hash: str, now: datetime, expires_at: datetime
) -> None:
    """Create ``name`` with an invite, or invite a removed reviewer of that name again."""
    async with db.sessions() as session, session.begin():
        row = await session.scalar(select(ReviewerRow).where(ReviewerRow.name == name))
        if row is not None and row.removed_at is None:
            raise ReviewerExists(name)
        if row is None:
            row = ReviewerRow(name=name, created_at=now)
            session.add(row)
        row.removed_at = None
        row.password_hash = None
        row.invite_hash = invite_hash
        row.invite_expires_at = expires_at


async def remove_reviewer(db: Database, name: str, now: datetime) -> bool:
    """Mark ``name`` removed and end their sessions; False when no active reviewer has it."""
    async with db.sessions() as session, session.begin():
        reviewer_id = await session.scalar(
            select(ReviewerRow.id).where(ReviewerRow.name == name, ReviewerRow.removed_at.is_(None))
        )
        if reviewer_id is None:
            return False
        await session.execute(
            update(ReviewerRow)
            .where(ReviewerRow.id == reviewer_id)
            .values(removed_at=now, password_hash=None, invite_hash=None, invite_expires_at=None)
        )
        await session.execute(delete(UiSessionRow).where(UiSessionRow.reviewer_id == reviewer_id))
    return True


async def list_reviewers(db: Database) -> list[ReviewerSummary]:
    """Active reviewers by name, with how many pairs each has decided."""
    r = ReviewRow
    counted = r.outcome.is_not(None) & (r.outcome != ReviewOutcome.SKIPPED.value)
    tallies = (
        select(
            r.reviewer_id,
            func.count().label("reviews"),
            func.max(r.decided_at).label("last"),
        )
        .where(counted)
        .group_by(r.reviewer_id)
        .subquery()
    )
    query = (
        select(ReviewerRow, tallies.c.reviews, tallies.c.last)
        .outerjoin(tallies, tallies.c.reviewer_id == ReviewerRow.id)
        .where(ReviewerRow.removed_at.is_(None))
        .order_by(ReviewerRow.name)
    )
    async with db.sessions() as session:
        found = (await session.execute(query)).all()
    return [
        ReviewerSummary(
            name=row.name,
            signed_up=row.password_hash is not None,
            invite_expires_at=row.invite_expires_at,
            created_at=row.created_at,
            reviews=int(reviews or 0),
            last_review_at=last,
        )
        for row, reviews, last in found
    ]


async def invited_name(db: Database, invite_hash: str, now: datetime) -> str | None:
    """The name an unused, unexpired invite is for."""
    query = select(ReviewerRow.name).where(
        ReviewerRow.invite_hash == invite_hash,
        ReviewerRow.invite_expires_at > now,
        ReviewerRow.removed_at.is_(None),
    )
    async with db.sessions() as session:
        return await session.scalar(query)


async def accept_invite(
    db: Database, invite_hash: str, password_hash: str, now: datetime
) -> int | None:
    """Set the password and use the invite up, in one statement; the reviewer's id, or None
    when the invite is unknown, used or expired."""
    async with db.sessions() as session, session.begin():
        reviewer_id = await session.scalar(
            select(ReviewerRow.id).where(
                ReviewerRow.invite_hash == invite_hash,
                ReviewerRow.invite_expires_at > now,
                ReviewerRow.removed_at.is_(None),
            )
        )
        if reviewer_id is None:
            return None
        done = await session.execute(
            update(ReviewerRow)
            .where(ReviewerRow.id == reviewer_id, ReviewerRow.invite_hash == invite_hash)
            .values(password_hash=password_hash, invite_hash=None, invite_expires_at=None)
        )
        return reviewer_id if done.rowcount == 1 else None  # type: ignore[attr-defined]


async def password_of(db: Database, name: str) -> tuple[int, str] | None:
    """An active, signed-up reviewer's id and password hash."""
    query = select(ReviewerRow.id, ReviewerRow.password_hash).where(
        ReviewerRow.name == name,
        ReviewerRow.removed_at.is_(None),
        ReviewerRow.password_hash.is_not(None),
    )
    async with db.sessions() as session:
        found = (await session.execute(query)).first()
    return None if found is None else (int(found[0]), str(found[1]))


async def rehash_password(db: Database, reviewer_id: int, password_hash: str) -> None:
    """Store a stronger hash of the same password (after the hashing parameters changed)."""
    async with db.sessions() as session, session.begin():
        await session.execute(
            update(ReviewerRow)
            .where(ReviewerRow.id == reviewer_id)
            .values(password_hash=password_hash)
        )
