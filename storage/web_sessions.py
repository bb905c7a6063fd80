"""Web UI sessions kept server-side, so signing out or removing a reviewer ends them at once.

The cookie holds a random token; only its sha256 is stored, so a copy of the database
signs nobody in. Every replica reads the same table, so no signing key has to be shared.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert, select

from storage.database import Database
from storage.models import ReviewerRow, UiSessionRow


@dataclass(frozen=True, slots=True)
class WebSession:
    token_hash: str
    role: str  # "admin" or "reviewer"
    name: str  # the admin token's holder, or the reviewer's name
    reviewer_id: int | None
    csrf_token: str
    expires_at: datetime


async def create_session(db: Database, session: WebSession, now: datetime) -> None:
    """Store a new session; expired ones are cleared on the way."""
    async with db.engine.begin() as conn:
        await conn.execute(delete(UiSessionRow).where(UiSessionRow.expires_at <= now))
        await conn.execute(
            insert(UiSessionRow).values(
                token_hash=session.token_hash,
                role=session.role,
                admin_name=session.name if session.role == "admin" else None,
                reviewer_id=session.reviewer_id,
                csrf_token=session.csrf_token,
                created_at=now,
                expires_at=session.expires_at,
            )
        )


async def find_session(db: Database, token_hash: str, now: datetime) -> WebSession | None:
    """The live session with this token hash; a removed reviewer's sessions are gone."""
    s = UiSessionRow
    query = (
        select(s, ReviewerRow.name)
        .outerjoin(ReviewerRow, ReviewerRow.id == s.reviewer_id)
        .where(s.token_hash == token_hash, s.expires_at > now)
    )
    async with db.sessions() as dbs:
        found = (await dbs.execute(query)).first()
    if found is None:
        return None
    row, reviewer_name = found
    name = row.admin_name if row.role == "admin" else reviewer_name
    if name is None:
        return None
    return WebSession(
        row.token_hash, row.role, name, row.reviewer_id, row.csrf_token, row.expires_at
    )


async def end_session(db: Database, token_hash: str) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(delete(UiSessionRow).where(UiSessionRow.token_hash == token_hash))
