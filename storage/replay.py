"""Replay runs and their results: choosing what to replay, what is left, what came back.

A run's selection is stored when the run is created, one pending row per exchange, so
resuming sends exactly the rest and a result is never recorded twice. The tables are
read only here: live reports and the UI query exchanges and observations, never these.
"""

from __future__ import annotations

import dataclasses
import hashlib
import heapq
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, func, insert, or_, select, update

from core import Exchange, Observation, Role, Route
from storage.database import Database
from storage.models import ExchangeRow, ReplayResultRow, ReplayRunRow
from storage.repository import get_exchanges
from storage.rows import observation_from_columns, observation_rows
from storage.window import ExchangeWindow

RUNNING, STOPPED, FINISHED = "running", "stopped", "finished"

# The request field a route cannot be sent without; absent when prompts were not stored.
PROMPT_FIELD = {
    Route.CHAT: "messages",
    Route.COMPLETIONS: "prompt",
    Route.EMBEDDINGS: "input",
    Route.RESPONSES: "input",
}

_SCAN_CHUNK = 1000
_INSERT_CHUNK = 500


def has_prompt(route: Route, request: Mapping[str, Any] | None) -> bool:
    return request is not None and PROMPT_FIELD[route] in request


def sample_rank(seed: int, exchange_id: uuid.UUID) -> bytes:
    """Where an exchange falls in a seeded sample: the same for every run with the seed."""
    return hashlib.sha256(f"{seed}:{exchange_id}".encode()).digest()


@dataclass(frozen=True, slots=True)
class Selection:
    chosen: list[tuple[datetime, uuid.UUID]]  # oldest first
    skipped_no_prompt: int  # in the window, but stored without their prompt


async def select_exchanges(
    db: Database,
    window: ExchangeWindow,
    *,
    sample: int | None = None,
    seed: int = 0,
    limit: int | None = None,
) -> Selection:
    """The window's exchanges that can be replayed: with ``sample``, the N ranked first by
    ``sample_rank``; then, with ``limit``, the oldest N of those."""
    eligible: list[tuple[datetime, uuid.UUID]] = []
    ranked: list[tuple[bytes, datetime, uuid.UUID]] = []  # a max-heap by negated rank
    skipped = 0
    after: tuple[datetime, uuid.UUID] | None = None
    e = ExchangeRow
    while True:
        query = select(e.id, e.created_at, e.route, e.request).where(*window.conditions())
        if after is not None:
            query = query.where(
                or_(e.created_at > after[0], and_(e.created_at == after[0], e.id > after[1]))
            )
        query = query.order_by(e.created_at, e.id).limit(_SCAN_CHUNK)
        async with db.sessions() as session:
            rows = (await session.execute(query)).all()
        for exchange_id, created_at, route, request in rows:
            if not has_prompt(Route(route), request):
                skipped += 1
            elif sample is None:
                eligible.append((created_at, exchange_id))
            else:
                key = bytes(255 - b for b in sample_rank(seed, exchange_id))
                entry = (key, created_at, exchange_id)
                if len(ranked) < sample:
                    heapq.heappush(ranked, entry)
                elif entry > ranked[0]:
                    heapq.heapreplace(ranked, entry)
        if len(rows) < _SCAN_CHUNK:
            break
        after = (rows[-1].created_at, rows[-1].id)
    if sample is not None:
        eligible = sorted((created_at, exchange_id) for _, created_at, exchange_id in ranked)
    return Selection(eligible[:limit] if limit is not None else eligible, skipped)


@dataclass(frozen=True, slots=True)
class ReplayRun:
    id: int
    candidate: str
    target: str
    parameters: Mapping[str, Any]
    status: str
    selected: int
    skipped_no_prompt: int
    created_at: datetime
    updated_at: datetime
    done: int  # selected exchanges with a result
    errors: int  # results that are failures


async def create_run(
    db: Database,
    *,
    candidate: str,
    target: str,
    selection_key: str,
    parameters: Mapping[str, Any],
    selection: Selection,
) -> int:
    """A new run with its selection stored as pending results, in one transaction."""
    now = datetime.now(UTC)
    async with db.engine.begin() as conn:
        result = await conn.execute(
            insert(ReplayRunRow).returning(ReplayRunRow.id),
            {
                "candidate": candidate,
                "target": target,
                "selection_key": selection_key,
                "parameters": dict(parameters),
                "status": RUNNING,
                "selected": len(selection.chosen),
                "skipped_no_prompt": selection.skipped_no_prompt,
                "created_at": now,
                "updated_at": now,
            },
        )
        run_id = int(result.scalar_one())
        pending = [
            {"run_id": run_id, "exchange_id": exchange_id, "original_created_at": created_at}
            for created_at, exchange_id in selection.chosen
        ]
        for start in range(0, len(pending), _INSERT_CHUNK):
            await conn.execute(insert(ReplayResultRow), pending[start : start + _INSERT_CHUNK])
    return run_id


def _counted() -> Any:
    r = ReplayResultRow
    return (
        select(
            ReplayRunRow,
            func.count(r.replayed_at).label("done"),
            func.count(r.error_kind).label("errors"),
        )
        .outerjoin(r, r.run_id == ReplayRunRow.id)
        .group_by(ReplayRunRow.id)
    )


def _run_of(row: Any) -> ReplayRun:
    run: ReplayRunRow = row[0]
    return ReplayRun(
        id=run.id,
        candidate=run.candidate,
        target=run.target,
        parameters=run.parameters,
        status=run.status,
        selected=run.selected,
        skipped_no_prompt=run.skipped_no_prompt,
        created_at=run.created_at,
        updated_at=run.updated_at,
        done=int(row.done),
        errors=int(row.errors),
    )


async def list_runs(db: Database) -> list[ReplayRun]:
    """Every run, newest first."""
    async with db.sessions() as session:
        rows = (await session.execute(_counted().order_by(ReplayRunRow.id.desc()))).all()
    return [_run_of(row) for row in rows]


class NoReplay(Exception):
    """No such run, or nothing replayed yet: the message says which."""


async def replayed_run(db: Database, run_id: int) -> ReplayRun:
    """The run, when it has answers to compare; raises NoReplay otherwise."""
    run = await get_run(db, run_id)
    if run is None:
        raise NoReplay(f"no replay run {run_id}: `understudy replay list` shows the runs")
    if run.done == 0:
        raise NoReplay(f"run {run_id} has no replayed answer yet")
    return run


async def get_run(db: Database, run_id: int) -> ReplayRun | None:
    async with db.sessions() as session:
        row = (await session.execute(_counted().where(ReplayRunRow.id == run_id))).first()
    return None if row is None else _run_of(row)


async def latest_run(db: Database, selection_key: str) -> ReplayRun | None:
    """The newest run made with this selection: the one running the same command resumes."""
    query = (
        _counted()
        .where(ReplayRunRow.selection_key == selection_key)
        .order_by(ReplayRunRow.id.desc())
        .limit(1)
    )
    async with db.sessions() as session:
        row = (await session.execute(query)).first()
    return None if row is None else _run_of(row)


async def set_status(db: Database, run_id: int, status: str) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(
            update(ReplayRunRow)
            .where(ReplayRunRow.id == run_id)
            .values(status=status, updated_at=datetime.now(UTC))
        )


async def pending_exchanges(
    db: Database, run_id: int, *, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> list[Exchange]:
    """The run's next exchanges still without a result, oldest first, after ``after``."""
    r = ReplayResultRow
    query = select(r.exchange_id).where(r.run_id == run_id, r.replayed_at.is_(None))
    if after is not None:
        query = query.where(
            or_(
                r.original_created_at > after[0],
                and_(r.original_created_at == after[0], r.exchange_id > after[1]),
            )
        )
    query = query.order_by(r.original_created_at, r.exchange_id).limit(limit)
    async with db.sessions() as session:
        ids = list((await session.scalars(query)).all())
    found = await get_exchanges(db, ids)
    return sorted(found, key=lambda x: (x.created_at, x.id))


async def record_result(
    db: Database, run_id: int, original: Exchange, observation: Observation
) -> bool:
    """Store the replayed answer of ``original``; False when it already had one."""
    row = observation_rows(dataclasses.replace(original, observations=(observation,)))[0]
    for linked in ("exchange_id", "position", "role"):
        del row[linked]
    r = ReplayResultRow
    async with db.engine.begin() as conn:
        result = await conn.execute(
            update(r)
            .where(r.run_id == run_id, r.exchange_id == original.id, r.replayed_at.is_(None))
            .values(replayed_at=datetime.now(UTC), **row)
        )
    return bool(result.rowcount)


@dataclass(frozen=True, slots=True)
class ReplayPair:
    original: Exchange
    replayed: Observation  # role SHADOW: the candidate's answer, off the live path


async def replay_pairs(
    db: Database, run_id: int, *, after: uuid.UUID | None, limit: int
) -> list[ReplayPair]:
    """The run's results with their original exchanges, by exchange id after ``after``."""
    r = ReplayResultRow
    query = select(r.exchange_id).where(r.run_id == run_id, r.replayed_at.is_not(None))
    if after is not None:
        query = query.where(r.exchange_id > after)
    query = query.order_by(r.exchange_id).limit(limit)
    async with db.sessions() as session:
        ids = list((await session.scalars(query)).all())
    return await pairs_by_id(db, run_id, ids)


def _observation(row: ReplayResultRow) -> Observation:
    return observation_from_columns(row, Role.SHADOW.value)


async def pairs_by_id(db: Database, run_id: int, ids: list[uuid.UUID]) -> list[ReplayPair]:
    """The run's results for these exchanges, with their originals, by exchange id."""
    r = ReplayResultRow
    query = select(r).where(r.run_id == run_id, r.exchange_id.in_(ids)).order_by(r.exchange_id)
    async with db.sessions() as session:
        rows = list((await session.scalars(query)).all())
    originals = {x.id: x for x in await get_exchanges(db, ids)}
    return [
        ReplayPair(originals[row.exchange_id], _observation(row))
        for row in rows
        if row.exchange_id in originals
    ]
