"""The rollout controller: every few seconds, the stage's report through ``reconcile``.

Only the leader acts (``Leadership``: an advisory lock on PostgreSQL, the one
process on SQLite). Every action is written through ``RolloutStore`` as actor
``controller``, with the verdict that caused it, and only if the rollout is
still at the version the decision was based on: a person's concurrent change wins.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog
from sqlalchemy import exc as sa_exc

from core import Verdict
from rollout.changes import RolloutAction, RolloutRefused, StageMove
from rollout.controller_metrics import ControllerMetrics
from rollout.plan import Stage, StagePlan
from rollout.position import StagePosition, locate_stage
from rollout.reconcile import HasVerdict, Transition, TransitionKind, reconcile
from rollout.store import RolloutStore
from storage.database import Database
from storage.flags import StaleVersion, route_history

log = structlog.get_logger("understudy.rollout")

ACTOR = "controller"
HISTORY_ROWS = 500  # rows read back to find where the current stage began
_DB_ERRORS = (OSError, TimeoutError, sa_exc.SQLAlchemyError)


@dataclass(frozen=True, slots=True)
class StageWindow:
    """What the stage's report covers: its candidate, from the stage's first flag version."""

    candidate: str
    stage: Stage
    first_flag_version: int


# The stage's report, or None when its window holds no data yet.
Assess = Callable[[StageWindow], Awaitable[HasVerdict | None]]


class Leadership(Protocol):
    async def hold(self) -> bool: ...

    async def release(self) -> None: ...


class SoleLeader:
    """SQLite: one process owns the database file, so it leads."""

    async def hold(self) -> bool:
        return True

    async def release(self) -> None:
        return None


_ACTIONS = {
    TransitionKind.PROMOTE: RolloutAction.PROMOTE,
    TransitionKind.ROLLBACK: RolloutAction.ROLLBACK,
    TransitionKind.HOLD: RolloutAction.HOLD,
}


def verdict_summary(verdict: Verdict) -> dict[str, Any]:
    """What the audit log keeps of the verdict behind a controller's action."""
    return {
        "decision": verdict.decision.value,
        "reason": verdict.reason,
        "n": verdict.n,
        "min_samples": verdict.min_samples,
        "alpha": verdict.alpha,
        "metrics": [
            {
                "name": m.name,
                "label": m.label.value,
                "estimate": m.estimate,
                "lower": m.lower,
                "upper": m.upper,
                "n": m.n,
                "margin": m.margin,
            }
            for m in verdict.metrics
        ],
    }


def stage_move(transition: Transition) -> StageMove:
    to = transition.to
    paused = transition.kind is TransitionKind.ROLLBACK  # a person decides when to try again
    return StageMove(to.name, to.mode, to.percent, paused=paused)


class Controller:
    def __init__(
        self,
        db: Database,
        store: RolloutStore,
        plan: StagePlan,
        assess: Assess,
        leadership: Leadership,
        metrics: ControllerMetrics,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_stop: Callable[[], None] = lambda: None,
    ) -> None:
        self._db = db
        self._store = store
        self._plan = plan
        self._assess = assess
        self._leadership = leadership
        self._metrics = metrics
        self._clock = clock
        self._on_stop = on_stop  # releases what ``assess`` holds

    async def position(self) -> StagePosition | None:
        """Where the default row stands; None before anything is stored."""
        history = await route_history(self._db, None, limit=HISTORY_ROWS)
        return locate_stage(self._plan, history) if history else None

    async def tick(self) -> Transition | None:
        """One look: lead or not, and if leading, reconcile and act. Returns what was done."""
        leading = await self._leadership.hold()
        self._metrics.leader.set(1 if leading else 0)
        self._metrics.last_run.set(time.time())
        at = await self.position()
        stage = at.position.stage if at is not None else None
        self._metrics.stage.set(self._plan.index(stage) if stage is not None else -1)
        if not leading or at is None or stage is None or at.current.candidate is None:
            return None
        state = at.position
        report = None
        if not (state.paused or state.killed):
            window = StageWindow(at.current.candidate, stage, at.first_version)
            report = await self._assess(window)
        transition = reconcile(self._plan, state, report, self._clock())
        if transition is None:
            return None
        return await self._act(transition, at, report)

    async def _act(
        self, transition: Transition, at: StagePosition, report: HasVerdict | None
    ) -> Transition | None:
        action = _ACTIONS[transition.kind]
        verdict = report.verdict if report is not None else None
        values = None if transition.kind is TransitionKind.HOLD else stage_move(transition)
        try:
            change = await self._store.change(
                action,
                actor=ACTOR,
                reason=transition.reason,
                values=values,
                expected_version=at.current.version,
                verdict=verdict_summary(verdict) if verdict is not None else None,
            )
        except (StaleVersion, RolloutRefused) as exc:
            # A person changed the rollout meanwhile, or the change breaks a rule: theirs wins.
            log.info("rollout_transition_dropped", kind=transition.kind.value, why=str(exc))
            return None
        self._metrics.transitions.labels(transition.kind.value).inc()
        log.info(
            "rollout_transition",
            kind=transition.kind.value,
            from_stage=at.position.stage.name if at.position.stage else None,
            to_stage=transition.to.name,
            flag_version=change.version,
            reason=transition.reason,
            units=verdict.n if verdict is not None else 0,
        )
        return transition

    async def run(self, interval_s: float) -> None:
        """Look every ``interval_s`` until cancelled; a database outage only skips looks."""
        failing = False
        try:
            while True:
                try:
                    await self.tick()
                    if failing:
                        log.info("rollout_controller_recovered")
                    failing = False
                except _DB_ERRORS as exc:
                    # The type only: a driver's message can quote the database URL.
                    if not failing:
                        log.warning("rollout_controller_failed", error=type(exc).__name__)
                    failing = True
                except Exception as exc:  # a bad report must not stop the rollout's guard
                    log.error(
                        "rollout_controller_failed", error=type(exc).__name__, detail=str(exc)
                    )
                    failing = True
                await asyncio.sleep(interval_s)
        finally:
            self._metrics.leader.set(0)
            self._on_stop()
            await self._leadership.release()
