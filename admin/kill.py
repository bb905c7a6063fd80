"""The admin kill: in force on this replica at once, stored when the database answers.

A kill is held in the live FlagSource before anything is written, so it works with
the database down; a tracked task keeps trying to store it, and the store takes over
once this replica has read it back. Ending a kill is explicit and must be stored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

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


class KillSwitch:
    def __init__(self, store: RolloutStore, flags: LiveFlags) -> None:
        self._store = store
        self._flags = flags
        self._tasks = BackgroundTasks()
        self._pending: dict[Route | None, asyncio.Task[None]] = {}

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
            self._flags.release_kill(routes)
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

    def forget(self, route: Route | None) -> None:
        """Stop storing a pending kill of ``route`` (it is being ended) and lift its hold."""
        for key in (route, None) if route is not None else tuple(self._pending):
            task = self._pending.pop(key, None)
            if task is not None:
                task.cancel()
        self._flags.release_kill(routes_of(route))

    async def close(self) -> None:
        await self._tasks.drain(0)

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
        self._pending[route] = task

    async def _store_later(self, route: Route | None, actor: str, reason: str) -> None:
        try:
            while True:
                await asyncio.sleep(RETRY_S)
                try:
                    change = await stored(lambda: self._write(route, actor, reason))
                except DB_ERRORS:
                    continue
                self._flags.kill_stored(routes_of(route), change.version)
                log.info("admin_kill_stored", flag_version=change.version, actor=actor)
                return
        finally:
            if self._pending.get(route) is asyncio.current_task():
                del self._pending[route]
