"""The FlagSource every request reads, and the loops that keep it current.

``current()`` is a dictionary lookup. Two loops feed it: one follows the database
(a LISTEN wake-up on PostgreSQL, and a poll of the newest version everywhere), one
watches the kill file, and needs no database at all. When the database cannot be
read, the last state read stays in force and its age is exported.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import structlog
from sqlalchemy import exc as sa_exc

from core import FlagState, Route
from rollout.metrics import RolloutMetrics, served_percent
from rollout.state import RolloutRules, RolloutSnapshot
from rollout.store import RolloutStore
from storage.database import Database
from storage.flag_notify import FlagListener
from storage.flags import latest_version

log = structlog.get_logger("understudy.rollout")

READ_TIMEOUT_S = 2.0  # one poll may not hang the loop longer than this
LISTEN_RETRY_S = 5.0  # how often a lost LISTEN connection is tried again
# What a database that is down, unreachable or refusing raises.
DB_ERRORS = (OSError, TimeoutError, sa_exc.SQLAlchemyError)


class LiveFlags:
    """A ``core.FlagSource`` over the newest snapshot; the kill file overrides it.

    A kill made on this replica (the admin API) is held here at once, before the store
    has it: the hold ends when a snapshot at or past the kill's stored version arrives,
    or when the kill is ended here. While the database is down it holds indefinitely.
    """

    def __init__(self, snapshot: RolloutSnapshot, metrics: RolloutMetrics) -> None:
        self.metrics = metrics
        self._kill_file = False
        self._held: dict[Route, float] = {}  # killed here, until the store reaches the version
        self.snapshot = snapshot
        self._states = snapshot.states
        metrics.show(snapshot, kill_file=False)

    def current(self, route: Route) -> FlagState:
        return self._states[route]

    @property
    def kill_file(self) -> bool:
        return self._kill_file

    @property
    def held_kills(self) -> frozenset[Route]:
        """Routes killed on this replica whose kill the followed store does not show yet."""
        return frozenset(self._held)

    def replace(self, snapshot: RolloutSnapshot) -> None:
        self.snapshot = snapshot
        self._held = {r: v for r, v in self._held.items() if snapshot.version < v}
        self._publish()

    def hold_kill(self, routes: Iterable[Route]) -> None:
        """Kill ``routes`` here now, until ``kill_stored`` says which version stored it."""
        self._held.update(dict.fromkeys(routes, math.inf))
        self._publish()

    def kill_stored(self, routes: Iterable[Route], version: int) -> None:
        """The held kill of ``routes`` is stored as ``version``: the store takes over from it."""
        for route in routes:
            if route in self._held:
                self._held[route] = version
        self.replace(self.snapshot)

    def release_kill(self, routes: Iterable[Route]) -> None:
        for route in routes:
            self._held.pop(route, None)
        self._publish()

    def set_kill_file(self, present: bool) -> None:
        self._kill_file = present
        self._publish()

    def _publish(self) -> None:
        snapshot, held = self.snapshot, self._held
        if self._kill_file:
            self._states = snapshot.killed
        elif held:
            self._states = {
                r: snapshot.killed[r] if r in held else snapshot.states[r] for r in Route
            }
        else:
            self._states = snapshot.states
        self.metrics.show(snapshot, kill_file=self._kill_file, killed_here=held.keys())


def _describe(snapshot: RolloutSnapshot) -> dict[str, str]:
    """A short text per route for the change log line."""
    described = {}
    for route, s in snapshot.states.items():
        flags = "".join((" killed" if s.killed else "", " paused" if s.paused else ""))
        candidate = s.candidate or "-"
        described[route.value] = f"{s.mode.value} {served_percent(s):g}% {candidate}{flags}"
    return described


def log_snapshot(event: str, snapshot: RolloutSnapshot) -> None:
    log.info(event, flag_version=snapshot.version, routes=_describe(snapshot))
    if snapshot.unknown_candidates:
        log.error(
            "rollout_candidate_not_configured",
            flag_version=snapshot.version,
            candidates=sorted(snapshot.unknown_candidates),
            effect="the primary serves those routes alone",
        )


class DatabaseFollower:
    """Keeps ``LiveFlags`` equal to the store, within ``poll_s`` (sooner with LISTEN)."""

    def __init__(
        self,
        db: Database,
        store: RolloutStore,
        rules: RolloutRules,
        flags: LiveFlags,
        *,
        poll_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._store = store
        self._rules = rules
        self.flags = flags
        self._poll_s = poll_s
        self._clock = clock
        self._wake = asyncio.Event()
        self._listener = FlagListener(db, self._wake.set) if db.dialect == "postgresql" else None
        self._last_read = clock()
        self._failing_since: float | None = None

    @property
    def listening(self) -> bool:
        """Whether PostgreSQL's LISTEN wakes this follower (else it only polls)."""
        return self._listener is not None and self._listener.listening

    def staleness_s(self) -> float:
        return max(0.0, self._clock() - self._last_read)

    async def load(self) -> None:
        """Seed an empty store from the settings and read it; raises if the database fails."""
        await self._store.ensure_seeded()
        snapshot = RolloutSnapshot.build(await self._store.rows(), self._rules)
        self._last_read = self._clock()
        self.flags.replace(snapshot)
        self.flags.metrics.watch_staleness(self.staleness_s)
        log_snapshot("rollout_loaded", snapshot)

    async def run(self) -> None:
        """Follow the store until cancelled."""
        next_listen = self._clock()
        try:
            while True:
                listener = self._listener
                if listener and not listener.listening and self._clock() >= next_listen:
                    next_listen = self._clock() + LISTEN_RETRY_S
                    await listener.start(READ_TIMEOUT_S)  # polling covers a failure
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._poll_s)
                self._wake.clear()
                await self._refresh()
        finally:
            if self._listener is not None:
                await self._listener.close()

    async def _refresh(self) -> None:
        flags = self.flags
        try:
            async with asyncio.timeout(READ_TIMEOUT_S):
                version = await latest_version(self._db)
                rows = await self._store.rows() if version != flags.snapshot.version else None
        except DB_ERRORS as exc:
            if self._failing_since is None:
                self._failing_since = self._clock()
                log.warning(
                    "rollout_flags_unreadable",
                    error=type(exc).__name__,
                    keeping_version=flags.snapshot.version,
                )
            return
        self._last_read = self._clock()
        if self._failing_since is not None:
            log.info(
                "rollout_flags_readable", stale_s=round(self._clock() - self._failing_since, 3)
            )
            self._failing_since = None
        if rows is not None:
            snapshot = RolloutSnapshot.build(rows, self._rules)
            flags.replace(snapshot)
            log_snapshot("rollout_changed", snapshot)


def _kill_file_exists(path: Path) -> bool:
    # A stat takes microseconds: done on the loop, so a busy thread pool cannot delay a kill.
    return path.exists()


async def watch_kill_file(path: Path, flags: LiveFlags, poll_s: float) -> None:
    """While ``path`` exists every request goes to the primary alone. Needs no database."""
    while True:
        present = _kill_file_exists(path)
        if present != flags.kill_file:
            flags.set_kill_file(present)
            log.warning("rollout_kill_file", present=present, path=str(path))
        await asyncio.sleep(poll_s)
