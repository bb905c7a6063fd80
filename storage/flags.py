"""The rollout flag rows and their audit log: read the current state, append a change.

Every change is one transaction: read the current rows, insert the next version and
its audit entry, and (on PostgreSQL) notify listeners when it commits. Two writers
racing for the same version collide on the primary key; the loser reads again.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from storage.database import Database
from storage.errors import StorageError
from storage.models import AuditRow, FlagRow

FLAG_CHANNEL = "understudy_rollout"  # PostgreSQL NOTIFY channel; the payload is the version
_WRITE_ATTEMPTS = 8
# PostgreSQL writers queue on this transaction-scoped advisory lock instead of racing.
_PG_WRITE_LOCK = 0x756E_6465_7266_6C67  # "underflg"


class StaleVersion(StorageError):
    """The rollout changed since the version the caller based its change on."""

    def __init__(self, expected: int, latest: int) -> None:
        self.expected = expected
        self.latest = latest
        super().__init__(f"the rollout is at version {latest}, not {expected}: read it again")


@dataclass(frozen=True, slots=True)
class FlagRecord:
    """One stored version of the rollout state; ``route`` None is the default row."""

    route: str | None
    mode: str
    candidate: str | None
    percent: float
    shadow_rate: float
    noise_rate: float
    reverse_shadow_rate: float = 0.0
    stage: str | None = None
    paused: bool = False
    killed: bool = False
    version: int = 0
    changed_at: datetime | None = None

    def settings(self) -> dict[str, Any]:
        """What the audit log keeps of a version: everything but when it was written."""
        values = asdict(self)
        del values["changed_at"]
        return values


@dataclass(frozen=True, slots=True)
class AuditNote:
    """Who makes a change, what kind it is and why."""

    actor: str
    action: str
    reason: str | None = None
    verdict: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    route: str | None
    flag_version: int | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    reason: str | None
    verdict: dict[str, Any] | None = field(default=None)


@dataclass(frozen=True, slots=True)
class Seed:
    """The default row an empty store starts from, and the audit note that says so."""

    record: FlagRecord
    note: AuditNote


# Given the current rows by route: the row the change starts from (the route's own, or the
# one it inherited) and the new row for the changed route (version left at 0).
Change = Callable[[Mapping[str | None, FlagRecord]], tuple[FlagRecord, FlagRecord]]


def _record(row: FlagRow) -> FlagRecord:
    return FlagRecord(
        route=row.route,
        mode=row.mode,
        candidate=row.candidate,
        percent=row.percent,
        shadow_rate=row.shadow_rate,
        noise_rate=row.noise_rate,
        reverse_shadow_rate=row.reverse_shadow_rate,
        stage=row.stage,
        paused=row.paused,
        killed=row.killed,
        version=row.version,
        changed_at=row.changed_at,
    )


async def latest_version(db: Database) -> int:
    """The highest version of any route; 0 when nothing was ever written."""
    async with db.engine.connect() as conn:
        value = (await conn.execute(select(func.max(FlagRow.version)))).scalar_one()
    return int(value or 0)


async def _serialise_writers(session: AsyncSession, dialect: str) -> None:
    if dialect == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_WRITE_LOCK})


async def _current(session: AsyncSession) -> dict[str | None, FlagRecord]:
    newest = select(func.max(FlagRow.version)).group_by(FlagRow.route)
    rows = (await session.scalars(select(FlagRow).where(FlagRow.version.in_(newest)))).all()
    return {row.route: _record(row) for row in rows}


async def current_flags(db: Database) -> dict[str | None, FlagRecord]:
    """The newest row of every route that has one (None: the default row)."""
    async with db.sessions() as session:
        return await _current(session)


async def route_history(db: Database, route: str | None, *, limit: int) -> list[FlagRecord]:
    """The newest ``limit`` rows of one route (None: the default row), newest first."""
    query = (
        select(FlagRow)
        .where(FlagRow.route.is_(None) if route is None else FlagRow.route == route)
        .order_by(FlagRow.version.desc())
        .limit(limit)
    )
    async with db.sessions() as session:
        return [_record(row) for row in (await session.scalars(query)).all()]


async def _insert(
    session: AsyncSession,
    dialect: str,
    record: FlagRecord,
    before: FlagRecord | None,
    based_on: int,
    note: AuditNote,
) -> FlagRecord:
    """Insert ``record`` as version ``based_on + 1``: taken already means someone changed the
    rollout after we read it, and the primary key refuses the insert (IntegrityError)."""
    at = datetime.now(UTC)
    written = replace(record, version=based_on + 1, changed_at=at)
    await session.execute(insert(FlagRow).values(**asdict(written)))
    await session.execute(
        insert(AuditRow).values(
            at=at,
            actor=note.actor,
            action=note.action,
            route=written.route,
            flag_version=written.version,
            before=before.settings() if before is not None else None,
            after=written.settings(),
            reason=note.reason,
            verdict=dict(note.verdict) if note.verdict is not None else None,
        )
    )
    if dialect == "postgresql":
        # Delivered when the transaction commits, so listeners never read ahead of it.
        await session.execute(
            text("SELECT pg_notify(:channel, :version)"),
            {"channel": FLAG_CHANNEL, "version": str(written.version)},
        )
    return written


async def append_flag(
    db: Database,
    route: str | None,
    change: Change,
    note: AuditNote,
    *,
    seed: Seed | None = None,
    expected_version: int | None = None,
) -> tuple[FlagRecord, FlagRecord]:
    """Append the next version for ``route`` as ``change`` computes it, with its audit entry.

    An empty store first gets ``seed`` as its default row, in the same transaction.
    Returns the row the change started from and the row written. Raises
    ``StaleVersion`` when ``expected_version`` is given and is not the latest version;
    exceptions from ``change`` propagate and nothing is written, not even the seed.
    """
    for attempt in range(_WRITE_ATTEMPTS):
        try:
            async with db.sessions() as session, session.begin():
                await _serialise_writers(session, db.dialect)
                rows = await _current(session)
                seeding = seed if not rows else None
                if seeding is not None:
                    rows = {None: replace(seeding.record, route=None)}
                latest = max((r.version for r in rows.values()), default=0)
                if expected_version is not None and expected_version != latest:
                    raise StaleVersion(expected_version, latest)
                before, record = change(rows)
                if seeding is not None:
                    seeded = await _insert(session, db.dialect, rows[None], None, 0, seeding.note)
                    before, latest = replace(before, version=seeded.version), seeded.version
                written = await _insert(
                    session, db.dialect, replace(record, route=route), before, latest, note
                )
            return before, written
        except sa_exc.IntegrityError:
            # Another writer took this version first (SQLite): read the new state and retry.
            if attempt == _WRITE_ATTEMPTS - 1:
                raise
            await asyncio.sleep(random.uniform(0, 0.02 * (attempt + 1)))
    raise AssertionError("unreachable")


async def seed_flags(db: Database, record: FlagRecord, note: AuditNote) -> FlagRecord | None:
    """Write ``record`` as the default row when the store is empty; None if it was not."""
    try:
        async with db.sessions() as session, session.begin():
            await _serialise_writers(session, db.dialect)
            if await _current(session):
                return None
            return await _insert(session, db.dialect, replace(record, route=None), None, 0, note)
    except sa_exc.IntegrityError:
        return None  # another process seeded it at the same moment


async def audit_entries(db: Database, *, limit: int | None = None) -> list[AuditEntry]:
    """The audit log, newest first."""
    query = select(AuditRow).order_by(AuditRow.id.desc()).limit(limit)
    async with db.sessions() as session:
        rows = (await session.scalars(query)).all()
    return [
        AuditEntry(
            id=r.id,
            at=r.at,
            actor=r.actor,
            action=r.action,
            route=r.route,
            flag_version=r.flag_version,
            before=r.before,
            after=r.after,
            reason=r.reason,
            verdict=r.verdict,
        )
        for r in rows
    ]
