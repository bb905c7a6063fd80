"""Response owners and translated turns in the database: ``core.ResponseOwnerStore``.

Writes are upserts: a response's owner row is written when its id is first seen, and again
once its twin is known. Expired rows are read as absent; ``understudy purge`` deletes them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Table, delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert

from core.responses import RESPONSE_TTL_S, ResponseOwner, TranslatedTurn
from storage.database import Database
from storage.models import ResponseOwnerRow, TranslatedTurnRow
from storage.redaction import redact_secrets

_OWNERS: Table = ResponseOwnerRow.__table__  # type: ignore[assignment]
_TURNS: Table = TranslatedTurnRow.__table__  # type: ignore[assignment]


def _upsert(dialect: str, table: Table, values: dict[str, Any]) -> Insert:
    """``INSERT ... ON CONFLICT (primary key) DO UPDATE`` with ``values``."""
    key = [c.name for c in table.primary_key.columns]
    changed = {k: v for k, v in values.items() if k not in key}
    if dialect == "postgresql":
        return (
            postgresql.insert(table)
            .values(values)
            .on_conflict_do_update(index_elements=key, set_=changed)
        )
    if dialect == "sqlite":
        return (
            sqlite.insert(table)
            .values(values)
            .on_conflict_do_update(index_elements=key, set_=changed)
        )
    raise ValueError(f"no upsert for dialect {dialect!r}")


def _masked(value: Any, redact: Callable[[str], str]) -> Any:
    """``value`` with ``redact`` applied to every text in it."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list):
        return [_masked(v, redact) for v in value]
    if isinstance(value, dict):
        return {k: _masked(v, redact) for k, v in value.items()}
    return value


class ResponseOwnerRepository:
    """``keep_turns`` False (prompts or answers are not stored): translated turns stay in the
    memory of the replica that made them, and a follow-up elsewhere finds no parent.
    ``redact`` is applied to every text of a stored turn, as the storage's privacy policy
    applies it to stored exchanges (secrets are masked whatever it is)."""

    def __init__(
        self,
        db: Database,
        *,
        keep_turns: bool = True,
        redact: Callable[[str], str] = redact_secrets,
    ) -> None:
        self._db = db
        self._keep_turns = keep_turns
        self._redact = redact

    async def save_owner(self, owner: ResponseOwner) -> None:
        values = {
            "response_id": owner.response_id,
            "owner": owner.owner,
            "candidate": owner.candidate,
            "twin_id": owner.twin_id,
            "expires_at": owner.expires_at,
        }
        async with self._db.engine.begin() as conn:
            await conn.execute(_upsert(conn.dialect.name, _OWNERS, values))

    async def load_owner(self, response_id: str) -> ResponseOwner | None:
        async with self._db.sessions() as session:
            row = await session.get(ResponseOwnerRow, response_id)
        if row is None:
            return None
        return ResponseOwner(row.response_id, row.owner, row.candidate, row.twin_id, row.expires_at)

    async def save_turn(self, turn: TranslatedTurn) -> None:
        if not self._keep_turns:
            return
        values = {
            "response_id": turn.response_id,
            "upstream": turn.upstream,
            # A key pasted into a conversation is masked here too; a follow-up on another
            # replica sees the mask where the one that made the turn saw the key.
            "messages": _masked(list(turn.messages), self._redact),
            "response": _masked(dict(turn.response), self._redact),
            "expires_at": turn.expires_at,
        }
        async with self._db.engine.begin() as conn:
            await conn.execute(_upsert(conn.dialect.name, _TURNS, values))

    async def load_turn(self, response_id: str) -> TranslatedTurn | None:
        if not self._keep_turns:
            return None
        async with self._db.sessions() as session:
            row = await session.get(TranslatedTurnRow, response_id)
        if row is None:
            return None
        return TranslatedTurn(
            row.response_id, row.upstream, row.messages, row.response, row.expires_at
        )

    async def forget(self, response_id: str) -> None:
        async with self._db.engine.begin() as conn:
            await conn.execute(delete(_OWNERS).where(_OWNERS.c.response_id == response_id))
            await conn.execute(delete(_TURNS).where(_TURNS.c.response_id == response_id))

    async def purge_turns_made_before(self, cutoff: datetime) -> int:
        """Delete the translated turns made before ``cutoff`` (each lives for the TTL)."""
        made_by = cutoff + timedelta(seconds=RESPONSE_TTL_S)
        async with self._db.engine.begin() as conn:
            result = await conn.execute(delete(_TURNS).where(_TURNS.c.expires_at < made_by))
        return result.rowcount or 0

    async def purge_expired(self, now: datetime | None = None) -> int:
        """Delete every expired owner and turn; the number of rows deleted."""
        at = now or datetime.now(UTC)
        deleted = 0
        async with self._db.engine.begin() as conn:
            for table in (_OWNERS, _TURNS):
                result = await conn.execute(delete(table).where(table.c.expires_at <= at))
                deleted += result.rowcount or 0
        return deleted
