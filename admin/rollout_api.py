"""The admin API's rollout routes: read the rollout and its history, change it with a reason.

Each route is one line of ``RolloutApi.routes``; every change goes through the same
``RolloutStore`` as the CLI, so its rules, its versioning and its audit entry are the
ones the CLI gets, with the token holder's name as the actor.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from typing import Any

from aiohttp import web

from admin.auth import ACTOR
from admin.kill import STORE_TIMEOUT_S, KillSwitch, routes_of, stored
from admin.payloads import ChangeRequest, change_request, history_limit, percent, read_object
from admin.stage_report import StageReportSource, off_plan_body, report_body, stage_window
from admin.stage_view import stage_json
from core import Route
from rollout.changes import NewValues, RolloutAction, RolloutRefused, StageMove, stage_move
from rollout.controller import HISTORY_ROWS
from rollout.live import DB_ERRORS, LiveFlags
from rollout.plan import StagePlan
from rollout.position import StagePosition, locate_stage
from rollout.store import Change, RolloutStore
from rollout.views import entry_json, state_json
from storage.database import Database
from storage.flags import AuditEntry, audit_entries, route_history

HISTORY_DEFAULT, HISTORY_MAX = 50, 1000
TOGGLES = (RolloutAction.PAUSE, RolloutAction.RESUME, RolloutAction.UNKILL)
# Moves along the stage plan, as `understudy rollout promote|rollback` makes them.
STAGE_MOVES = (RolloutAction.PROMOTE, RolloutAction.ROLLBACK)
# Changes that take a reason, an optional if_version and route, and nothing else.
PERSON_CHANGES = (*TOGGLES, RolloutAction.KILL, *STAGE_MOVES)


class DatabaseUnavailable(Exception):
    """The flag store cannot be reached or is not used; nothing was changed."""


class RolloutApi:
    """``store`` and ``db`` are None when the rollout comes from the settings alone;
    ``reports`` gives the current stage's report."""

    def __init__(
        self,
        store: RolloutStore | None,
        db: Database | None,
        flags: LiveFlags,
        plan: StagePlan,
        reports: StageReportSource | None = None,
    ) -> None:
        self._plan = plan
        self._store = store
        self._db = db
        self._flags = flags
        self._reports = reports
        self._kills = KillSwitch(store, flags) if store is not None else None

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/rollout", self.show),
            web.get("/rollout/history", self.history),
            web.get("/rollout/report", self.report),
            web.post("/rollout/percent", self.set_percent),
            *(web.post(f"/rollout/{a.value}", partial(self.change, a)) for a in PERSON_CHANGES),
        ]

    async def close(self) -> None:
        if self._kills is not None:
            await self._kills.close()

    @property
    def plan(self) -> StagePlan:
        return self._plan

    async def show(self, _request: web.Request) -> web.Response:
        return web.json_response(await self.state())

    async def state(self) -> dict[str, Any]:
        """The rollout this replica serves with now, kills included, and where it stands on
        the plan (null while the database cannot be read: the routes are still this
        replica's own)."""
        position = None
        if self._db is not None:
            try:
                position = await self._position(self._db)
            except DB_ERRORS:
                position = None
        flags = self._flags
        body: dict[str, Any] = {
            "object": "rollout",
            "version": flags.snapshot.version,
            **stage_json(self._plan, position, datetime.now(UTC)),
            "kill_file": flags.kill_file,
            "killed_here": sorted(r.value for r in flags.held_kills),
            "routes": {r.value: state_json(flags.current(r)) for r in Route},
        }
        return body

    async def report(self, _request: web.Request) -> web.Response:
        return web.json_response(await self.stage_report())

    async def stage_report(self) -> dict[str, Any]:
        """The current stage's report on the stage's own window, the one the controller
        judges; a report at most one controller interval old may be reused."""
        db = self._database()
        if self._reports is None:
            raise DatabaseUnavailable(_NO_STORE)
        try:
            window = stage_window(await self._position(db))
            if window is None:
                return off_plan_body()
            built = await self._reports(db, window)
        except DB_ERRORS as exc:
            raise DatabaseUnavailable("the recorded exchanges cannot be read now") from exc
        return report_body(window, built, datetime.now(UTC))

    async def _position(self, db: Database) -> StagePosition | None:
        """Where the default row stands on the plan, as the controller sees it."""
        async with asyncio.timeout(STORE_TIMEOUT_S):
            history = await route_history(db, None, limit=HISTORY_ROWS)
        return locate_stage(self._plan, history) if history else None

    async def history(self, request: web.Request) -> web.Response:
        limit = history_limit(request.query.get("limit"), HISTORY_DEFAULT, HISTORY_MAX)
        entries = await self.audit_log(limit)
        return web.json_response({"object": "list", "data": [entry_json(e) for e in entries]})

    async def audit_log(self, limit: int) -> list[AuditEntry]:
        """The newest ``limit`` audit entries, newest first."""
        db = self._database()
        try:
            async with asyncio.timeout(STORE_TIMEOUT_S):
                return await audit_entries(db, limit=limit)
        except DB_ERRORS as exc:
            raise DatabaseUnavailable("the audit log cannot be read now") from exc

    async def set_percent(self, request: web.Request) -> web.Response:
        body = await read_object(request)
        change = change_request(body, frozenset({"percent"}))
        values = NewValues(percent=percent(body))
        done = await self.apply(RolloutAction.SET, change, actor=request[ACTOR], values=values)
        return _changed(RolloutAction.SET, change.route, done)

    async def change(self, action: RolloutAction, request: web.Request) -> web.Response:
        change = change_request(await read_object(request))
        done = await self.apply(action, change, actor=request[ACTOR])
        return _changed(action, change.route, done)

    async def apply(
        self,
        action: RolloutAction,
        change: ChangeRequest,
        *,
        actor: str,
        values: NewValues | None = None,
    ) -> Change | None:
        """Make a person's change as ``actor``: the admin API's and the web UI's one way in.

        ``values`` are a ``set``'s new values. Returns the stored change, or None for a
        kill in force here but not stored yet. Raises ``RolloutRefused``, ``StaleVersion``
        or ``DatabaseUnavailable``; nothing is changed then.
        """
        if action is RolloutAction.KILL:
            return await self._kill(change, actor)
        if action in STAGE_MOVES:
            return await self._move(action, change, actor)
        if action is RolloutAction.SET:
            return await self._write(actor, action, change, values)
        if action not in TOGGLES:
            raise RolloutRefused("action", f"{action.value} is not a change a person makes")
        # An unkill also ends this replica's hold, and any kill here still waiting to be stored.
        kills = self._kills if action is RolloutAction.UNKILL else None
        through = kills.unkill if kills is not None else None
        return await self._write(actor, action, change, None, through=through)

    async def _move(self, action: RolloutAction, change: ChangeRequest, actor: str) -> Change:
        """Promote to the plan's next stage, or roll back to its shadow stage, paused; based
        on the version read here unless ``if_version`` names another."""
        store = self._store
        if store is None:
            raise DatabaseUnavailable(_NO_STORE)
        try:
            async with asyncio.timeout(STORE_TIMEOUT_S):
                rows = await store.rows()
        except DB_ERRORS as exc:
            raise DatabaseUnavailable("the flag store cannot be reached: nothing changed") from exc
        route = change.route
        row = rows[None] if route is None else rows.get(route.value, rows[None])
        _stage, _to, values = stage_move(self._plan, action, row)
        if change.if_version is None:
            latest = max(r.version for r in rows.values())
            change = replace(change, if_version=latest or None)  # 0: the seed is written now
        return await self._write(actor, action, change, values)

    async def _kill(self, change: ChangeRequest, actor: str) -> Change | None:
        """In force here at once; None (the API's 202) while the database is down."""
        if self._kills is None:
            raise DatabaseUnavailable(_NO_STORE)
        return await self._kills.kill(
            change.route, actor=actor, reason=change.reason, expected_version=change.if_version
        )

    def _database(self) -> Database:
        if self._db is None:
            raise DatabaseUnavailable(_NO_STORE)
        return self._db

    async def _write(
        self,
        actor: str,
        action: RolloutAction,
        change: ChangeRequest,
        values: NewValues | StageMove | None,
        *,
        through: Callable[[Route | None, Callable[[], Awaitable[Change]]], Awaitable[Change]]
        | None = None,
    ) -> Change:
        """Store ``action`` as ``actor``; ``through`` wraps the write."""
        store = self._store
        if store is None:
            raise DatabaseUnavailable(_NO_STORE)

        async def write() -> Change:
            return await store.change(
                action,
                actor=actor,
                reason=change.reason,
                route=change.route,
                values=values,
                expected_version=change.if_version,
            )

        try:
            if through is not None:
                return await through(change.route, write)
            return await stored(write)
        except DB_ERRORS as exc:
            raise DatabaseUnavailable("the flag store cannot be reached: nothing changed") from exc


_NO_STORE = (
    "this server follows its settings, not a flag store: changing the rollout needs the "
    "database (UNDERSTUDY_STORAGE__ENABLED=true)"
)


def _changed(action: RolloutAction, route: Route | None, change: Change | None) -> web.Response:
    body: dict[str, Any] = {
        "object": "rollout.change",
        "action": action.value,
        "route": route.value if route else None,
        "routes": [r.value for r in routes_of(route)],
        "stored": change is not None,
        "version": change.version if change else None,
        "before": change.before.settings() if change else None,
        "after": change.after.settings() if change else None,
    }
    if change is None:
        body["effect"] = "in force on this replica now; stored when the database answers"
    return web.json_response(body, status=200 if change else 202)
