"""Deleting records: past retention, or one exchange everywhere it was kept."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete

from storage.codec import to_utc
from storage.database import Database
from storage.models import ExchangeRow
from storage.response_owners import ResponseOwnerRepository
from storage.rollups import subtract_exchanges
from storage.spill import SpillDir


@dataclass(frozen=True, slots=True)
class PurgeResult:
    # Rows deleted from the exchanges table; their observations, judgments and reviews go
    # with them (ON DELETE CASCADE), and their counts leave the overview's rollups.
    exchanges: int
    spilled: int  # records removed from spill and rejected files


def _created_before(record: dict[str, Any] | None, cutoff: datetime) -> bool:
    if record is None:
        return True  # a torn line: nothing to keep
    try:
        return to_utc(datetime.fromisoformat(record["created_at"])) < cutoff
    except (KeyError, TypeError, ValueError):
        return True


async def purge_older_than(db: Database, spill_dir: Path, cutoff: datetime) -> PurgeResult:
    """Delete every exchange created before ``cutoff``, in the database and in spill files."""
    cutoff = to_utc(cutoff)
    # Spill files first: a replay racing with us could otherwise bring a row back.
    spilled = await asyncio.to_thread(
        SpillDir(spill_dir).remove_records, lambda r: _created_before(r, cutoff)
    )
    doomed = [ExchangeRow.created_at < cutoff]
    async with db.engine.begin() as conn:
        await subtract_exchanges(conn, doomed)
        result = await conn.execute(delete(ExchangeRow).where(*doomed))
    conversations = ResponseOwnerRepository(db)
    await conversations.purge_expired()  # past their own expiry
    await conversations.purge_turns_made_before(cutoff)  # prompts kept for translation
    return PurgeResult(exchanges=result.rowcount, spilled=spilled)


async def purge_exchange(db: Database, spill_dir: Path, exchange_id: uuid.UUID) -> PurgeResult:
    """Delete one exchange: its rows (observations and judgments cascade) and spilled copies."""
    wanted = str(exchange_id)
    spilled = await asyncio.to_thread(
        SpillDir(spill_dir).remove_records, lambda r: r is not None and r.get("id") == wanted
    )
    doomed = [ExchangeRow.id == exchange_id]
    async with db.engine.begin() as conn:
        await subtract_exchanges(conn, doomed)
        result = await conn.execute(delete(ExchangeRow).where(*doomed))
    return PurgeResult(exchanges=result.rowcount, spilled=spilled)
