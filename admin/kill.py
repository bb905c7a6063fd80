"""The admin kill: in force on this replica at once, stored when the database answers.

A kill is held in the live FlagSource before anything is written, so it works with
the database down; a tracked task keeps trying to store it, and the store takes over
once this replica has read it back. Ending a kill is explicit and must be stored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from core import Route
from proxy.tasks import BackgroundTasks
from rollout.changes import RolloutAction
from rollout.live import DB_ERRORS, LiveFlags
from rollout.store import Change, RolloutStore
from storage.flags import StaleVersion

log = structlog.get_logger("understudy.admin")

STORE_TIMEOUT_S = 2.0  # one attempt to reach the database may not hold a request longer
RETRY_S = 1.0  # how often a kill not yet stored is tried again


def routes_of(route: Route | None) -> tuple[Route, ...]:
    """The routes a change to ``route`` reaches: the default row reaches all of them."""
    return tuple(Route) if route is None else (route,)


async def stored(attempt: Callable[[], Awaitable[Change]]) -> Change:
    """One attempt to write a change, bounded so a hung database cannot hold a request."""
    async with asyncio.timeout(STORE_TIMEOUT_S):
        return await attempt()


@dataclass(frozen=True, slots=True)
class PendingKill:
    task: asyncio.Task[None]
    actor: str
    reason: str


class KillSwitch:
    def __init__(self, store: RolloutStore, flags: LiveFlags) -> None:
        self._store = store
        self._flags = flags
        self._tasks = BackgroundTasks()
        self._pending: dict[Route | None, PendingKill] = {}  # by scope (None: every route)

    async def kill(
        self, route: Route | None, *, actor: str, reason: str, expected_version: int | None
    ) -> Change | None:
        """Kill ``route`` here at once; the stored change, or None while the database is down.

        ``expected_version`` is checked while the database answers (``StaleVersion``: the
        kill is lifted again); a kill that could not be stored is stored later without it,
        since stopping the candidate is safe whatever changed meanwhile.
        """
        routes = routes_of(route)
        self._flags.hold_kill(routes)
        try:
            change = await stored(lambda: self._write(route, actor, reason, expected_version))
        except StaleVersion:
            self._lift(route)
            raise
        except DB_ERRORS as exc:
            log.warning(
                "admin_kill_not_stored_yet",
                route=route.value if route else None,
                actor=actor,
                error=type(exc).__name__,
                effect="in force on this replica; stored when the database answers",
            )
            self._retry(route, actor, reason)
            return None
        self._flags.kill_stored(routes, change.version)
        return change

    async def unkill(self, route: Route | None, write: Callable[[], Awaitable[Change]]) -> Change:
        """End a kill of ``route`` with ``write`` (the stored unkill), then lift it here.

        A kill of the same scope still waiting to be stored is stopped first, so it cannot
        land after the unkill; if the unkill cannot be stored, that kill is kept.
        """
        pending = self._pending.pop(route, None)
        if pending is not None:
            pending.task.cancel()
            await asyncio.wait([pending.task])
        try:
            change = await stored(write)
        except BaseException:
            if pending is not None:
                self._retry(route, pending.actor, pending.reason)
            raise
        self._lift(route)
        return change

    async def close(self) -> None:
        await self._tasks.drain(0)

    def _lift(self, route: Route | None) -> None:
        """End this replica's hold on ``route``, except where a kill still waiting covers it."""
        if None in self._pending:
            return  # a kill of every route is still to be stored
        covered = {r for r in self._pending if r is not None}
        self._flags.release_kill(r for r in routes_of(route) if r not in covered)

    async def _write(
        self, route: Route | None, actor: str, reason: str, expected_version: int | None = None
    ) -> Change:
        return await self._store.change(
            RolloutAction.KILL,
            actor=actor,
            reason=reason,
            route=route,
            expected_version=expected_version,
        )

    def _retry(self, route: Route | None, actor: str, reason: str) -> None:
        if route in self._pending:
            return  # a kill of this scope is already waiting to be stored
        task = self._tasks.spawn(
            self._store_later(route, actor, reason), name=f"admin-kill:{route or 'default'}"
        )
        self._pending[route] = PendingKill(task, actor, reason)

    async def _store_later(self, route: Route | None, actor: str, reason: str) -> None:
        while True:
            await asyncio.sleep(RETRY_S)
            try:
                change = await stored(lambda: self._write(route, actor, reason))
            except DB_ERRORS:
                continue
            pending = self._pending.get(route)
            if pending is not None and pending.task is asyncio.current_task():
                del self._pending[route]
            self._flags.kill_stored(routes_of(route), change.version)
            log.info("admin_kill_stored", flag_version=change.version, actor=actor)
            return
