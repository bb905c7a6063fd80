"""The rollout controller: every few seconds, the stage's report through ``reconcile``.

Only the leader acts on reports (``Leadership``: an advisory lock on PostgreSQL, the
one process on SQLite). Every replica's controller turns its own circuit-breaker trips
into a rollback at once: only that replica saw them, and a guardrail waits for no
report. Every action is written through ``RolloutStore`` as actor ``controller``, with
the verdict or the trip that caused it, and only if the rollout is still at the version
the decision was based on: a person's concurrent change wins, and two replicas' rollbacks
for one failure make one row.
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
from rollout.trips import PendingTrip, RecentTrips, TripOutcome, trip_outcome, trip_reason
from storage.database import Database
from storage.flags import StaleVersion, route_history

log = structlog.get_logger("understudy.rollout")

ACTOR = "controller"
HISTORY_ROWS = 500  # rows read back to find where the current stage began
TRIP_ATTEMPTS = 3  # reads and writes of a trip's rollback while others change the rollout
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
        trips: RecentTrips | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._db = db
        self._store = store
        self._plan = plan
        self._assess = assess
        self._leadership = leadership
        self._metrics = metrics
        self._trips = trips  # this replica's breaker trips; None: trips stay metrics
        self._guarding = asyncio.Lock()  # one guard at a time takes the trips
        self._clock = clock

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
        verdict = report.verdict if report is not None else None
        try:
            return await self._write(transition, at, verdict)
        except (StaleVersion, RolloutRefused) as exc:
            # A person changed the rollout meanwhile, or the change breaks a rule: theirs wins.
            log.info("rollout_transition_dropped", kind=transition.kind.value, why=str(exc))
            return None

    async def guard(self) -> Transition | None:
        """Turn this replica's breaker trips into a rollback when the tripped candidate
        serves users; leading or not, and whatever the report says. Returns the rollback
        made, if any. A trip whose rollback keeps meeting newer versions stays for later."""
        trips = self._trips
        if trips is None or not trips.pending():
            return None
        async with self._guarding:
            at = await self.position()
            done = None
            for pending in trips.pending():
                for _attempt in range(TRIP_ATTEMPTS):
                    outcome = trip_outcome(pending.trip, at)
                    if outcome is not TripOutcome.ROLLBACK or at is None:
                        self._unacted(pending, outcome)
                        trips.taken(pending)
                        break
                    transition = Transition(
                        TransitionKind.ROLLBACK, self._plan.first, trip_reason(pending)
                    )
                    try:
                        done = await self._write(transition, at, None)
                        self._metrics.trips.labels(outcome.value).inc()
                    except StaleVersion:
                        at = await self.position()  # judged again on what changed meanwhile
                        continue
                    except RolloutRefused as exc:
                        log.info("rollout_transition_dropped", kind="rollback", why=str(exc))
                    trips.taken(pending)
                    at = await self.position()
                    break
            return done

    def _unacted(self, pending: PendingTrip, outcome: TripOutcome) -> None:
        self._metrics.trips.labels(outcome.value).inc()
        log.info(
            "rollout_trip_not_acted",
            candidate=pending.trip.candidate,
            cause=pending.trip.cause.value,
            trips=pending.count,
            outcome=outcome.value,
            why=_NOT_ACTED_WHY[outcome],
        )

    async def _write(
        self, transition: Transition, at: StagePosition, verdict: Verdict | None
    ) -> Transition:
        """Store ``transition`` based on ``at``'s version, logged and counted; raises
        StaleVersion when the rollout moved meanwhile, RolloutRefused when a rule forbids it."""
        action = _ACTIONS[transition.kind]
        values = None if transition.kind is TransitionKind.HOLD else stage_move(transition)
        change = await self._store.change(
            action,
            actor=ACTOR,
            reason=transition.reason,
            values=values,
            expected_version=at.current.version,
            verdict=verdict_summary(verdict) if verdict is not None else None,
        )
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
        """Look every ``interval_s``, and take this replica's trips as they come, until
        cancelled. The two go on side by side, so a rollback never waits for a report; a
        database outage only skips a look, and a trip not taken is taken later."""
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(
                    _repeat("look", self.tick, lambda: asyncio.sleep(interval_s)),
                    name="rollout-controller-look",
                )
                trips = self._trips
                if trips is not None:
                    group.create_task(
                        _repeat("guard", self.guard, lambda: trips.wait(interval_s)),
                        name="rollout-controller-guard",
                    )
        finally:
            self._metrics.leader.set(0)
            await self._leadership.release()


async def _repeat(
    loop: str,
    step: Callable[[], Awaitable[Transition | None]],
    pause: Callable[[], Awaitable[None]],
) -> None:
    failing = False
    while True:
        try:
            await step()
            if failing:
                log.info("rollout_controller_recovered", loop=loop)
            failing = False
        except _DB_ERRORS as exc:
            # The type only: a driver's message can quote the database URL.
            if not failing:
                log.warning("rollout_controller_failed", loop=loop, error=type(exc).__name__)
            failing = True
        except Exception as exc:  # a bad report must not stop the rollout's guard
            log.error(
                "rollout_controller_failed", loop=loop, error=type(exc).__name__, detail=str(exc)
            )
            failing = True
        await pause()


_NOT_ACTED_WHY = {
    TripOutcome.NOT_SERVING: "the candidate serves no users: there is nothing to roll back",
    TripOutcome.OTHER_CANDIDATE: "the rollout's candidate is another one",
    TripOutcome.BEFORE_STAGE: "it tripped before the current stage began",
}
