"""Reading exchanges back as ``core.Exchange`` values, for the CLI, the UI and reports."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, Select, and_, func, or_, select

from core import Exchange, Role
from storage.database import Database
from storage.models import ExchangeRow, ObservationRow
from storage.rows import exchange_from_rows
from storage.window import ExchangeWindow

SERVED_PRIMARY = "primary"
SERVED_CANDIDATE = "candidate"


def _conditions(
    window: ExchangeWindow | None, served: str | None, role: Role | None
) -> list[ColumnElement[bool]]:
    """The window's exchanges, narrowed by who answered the client and by an arm's role.

    ``served`` is ``"primary"``, ``"candidate"`` or the name of the upstream that
    answered the client. ``role`` keeps exchanges that have an arm with that role.
    """
    window = window or ExchangeWindow()
    where = window.conditions()
    if window.candidate is not None:
        where.append(ExchangeRow.candidate == window.candidate)
    if served == SERVED_PRIMARY:
        # A fallback means the candidate was chosen but the primary answered.
        where.append(or_(~ExchangeRow.served_is_candidate, ExchangeRow.fallback))
    elif served == SERVED_CANDIDATE:
        where.append(and_(ExchangeRow.served_is_candidate, ~ExchangeRow.fallback))
    elif served is not None:
        where.append(ExchangeRow.served_by == served)
    if role is not None:
        where.append(
            ExchangeRow.id.in_(
                select(ObservationRow.exchange_id).where(ObservationRow.role == role.value)
            )
        )
    return where


async def _load(db: Database, query: Select[ExchangeRow]) -> list[Exchange]:
    async with db.sessions() as session:
        rows = list((await session.scalars(query)).all())
        if not rows:
            return []
        obs_query = (
            select(ObservationRow)
            .where(ObservationRow.exchange_id.in_([r.id for r in rows]))
            .order_by(ObservationRow.exchange_id, ObservationRow.position)
        )
        by_exchange: dict[uuid.UUID, list[ObservationRow]] = {}
        for obs in (await session.scalars(obs_query)).all():
            by_exchange.setdefault(obs.exchange_id, []).append(obs)
    return [exchange_from_rows(r, by_exchange.get(r.id, [])) for r in rows]


async def list_exchanges(
    db: Database,
    window: ExchangeWindow | None = None,
    *,
    served: str | None = None,
    role: Role | None = None,
    limit: int | None = 100,
) -> list[Exchange]:
    """Matching exchanges with their observations, newest first, at most ``limit``."""
    query = (
        select(ExchangeRow)
        .where(*_conditions(window, served, role))
        .order_by(ExchangeRow.created_at.desc(), ExchangeRow.id.desc())
    )
    if limit is not None:
        query = query.limit(limit)
    return await _load(db, query)


async def iter_exchanges(
    db: Database,
    window: ExchangeWindow | None = None,
    *,
    served: str | None = None,
    role: Role | None = None,
    chunk_size: int = 500,
) -> AsyncIterator[Exchange]:
    """Every matching exchange, oldest first, read in chunks.

    For reports over long periods: memory stays flat whatever the number of rows.
    """
    where = _conditions(window, served, role)
    after: tuple[datetime, uuid.UUID] | None = None
    while True:
        query = select(ExchangeRow).where(*where)
        if after is not None:
            query = query.where(
                or_(
                    ExchangeRow.created_at > after[0],
                    and_(ExchangeRow.created_at == after[0], ExchangeRow.id > after[1]),
                )
            )
        query = query.order_by(ExchangeRow.created_at, ExchangeRow.id).limit(chunk_size)
        chunk = await _load(db, query)
        for exchange in chunk:
            yield exchange
        if len(chunk) < chunk_size:
            return
        after = (chunk[-1].created_at, chunk[-1].id)


async def count_exchanges(
    db: Database,
    window: ExchangeWindow | None = None,
    *,
    served: str | None = None,
    role: Role | None = None,
) -> int:
    query = select(func.count()).select_from(ExchangeRow).where(*_conditions(window, served, role))
    async with db.sessions() as session:
        return int((await session.execute(query)).scalar_one())


async def get_exchange(db: Database, exchange_id: uuid.UUID) -> Exchange | None:
    found = await _load(db, select(ExchangeRow).where(ExchangeRow.id == exchange_id))
    return found[0] if found else None


async def get_exchanges(db: Database, exchange_ids: Sequence[uuid.UUID]) -> list[Exchange]:
    """The exchanges with these ids that exist, in no particular order."""
    if not exchange_ids:
        return []
    return await _load(db, select(ExchangeRow).where(ExchangeRow.id.in_(list(exchange_ids))))


async def find_by_prefix(db: Database, prefix: str, *, limit: int = 2) -> list[uuid.UUID]:
    """Ids starting with ``prefix`` (with or without dashes), so the CLI takes short ids."""
    wanted = prefix.lower().replace("-", "")
    if not wanted or any(c not in "0123456789abcdef" for c in wanted):
        return []
    if len(wanted) == 32:
        exact = uuid.UUID(wanted)
        return [exact] if await get_exchange(db, exact) is not None else []
    # Uuid columns store 32 hex digits on SQLite and a uuid on PostgreSQL: bound the
    # range instead of matching text, so both use the primary key index.
    low = uuid.UUID(wanted.ljust(32, "0"))
    high = uuid.UUID(wanted.ljust(32, "f"))
    query = (
        select(ExchangeRow.id)
        .where(ExchangeRow.id >= low, ExchangeRow.id <= high)
        .order_by(ExchangeRow.id)
        .limit(limit)
    )
    async with db.sessions() as session:
        return list((await session.scalars(query)).all())
