"""Idempotent batch inserts: a second insert of the same exchange id changes nothing."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import Insert

from core import Exchange
from storage.models import ExchangeRow, ObservationRow
from storage.rollups import add_exchanges
from storage.rows import exchange_row, observation_rows
from storage.shapes import power_of_two_chunks

_EXCHANGES: Table = ExchangeRow.__table__  # type: ignore[assignment]
_OBSERVATIONS: Table = ObservationRow.__table__  # type: ignore[assignment]


def insert_ignoring_duplicates(dialect: str, table: Table) -> Insert:
    """``INSERT ... ON CONFLICT DO NOTHING`` on the table's primary key."""
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    raise ValueError(f"no idempotent insert for dialect {dialect!r}")


# Most exchanges per INSERT statement. Each statement has a fixed cost (about 0.1 ms, and
# a hop to the database's thread); its parameters are built on the event loop, the
# recorder's (or a proxy's recording in-process), which 64 exchanges hold for a few ms.
# Statements carry a power of two of them, so there are 7 shapes (see storage.shapes).
STATEMENT_ROWS = 64


async def insert_exchanges(conn: AsyncConnection, exchanges: Sequence[Exchange]) -> None:
    """Insert exchanges with their observations inside the caller's transaction, and add
    those that were new to the rollups the overview reads."""
    # The first copy of an id wins whole, within a batch as across batches.
    first: dict[uuid.UUID, Exchange] = {}
    for e in exchanges:
        first.setdefault(e.id, e)
    new: list[Exchange] = []
    for chunk in power_of_two_chunks(list(first.values()), STATEMENT_ROWS):
        new += await _insert_new(conn, chunk)
    # One row per execution, whatever the count: their statement has a single shape,
    # and grouping by STATEMENT_ROWS exchanges rather than by chunk saves statements.
    observations = insert_ignoring_duplicates(conn.dialect.name, _OBSERVATIONS)
    for start in range(0, len(new), STATEMENT_ROWS):
        rows = [row for e in new[start : start + STATEMENT_ROWS] for row in observation_rows(e)]
        if rows:
            await conn.execute(observations, rows)
    await add_exchanges(conn, [e.id for e in new])


async def _insert_new(conn: AsyncConnection, unique: Sequence[Exchange]) -> list[Exchange]:
    """Insert exchanges with distinct ids, without their observations; those that were
    new (one already stored is skipped whole)."""
    result = await conn.execute(
        insert_ignoring_duplicates(conn.dialect.name, _EXCHANGES).returning(_EXCHANGES.c.id),
        [exchange_row(e) for e in unique],
    )
    inserted = set(result.scalars().all())
    return [e for e in unique if e.id in inserted]
