"""The story ``understudy demo`` tells: a stage plan short enough to watch, and each change
to the rollout told as the audit log records it, with the reason and the verdict behind it.

The storyteller reads the same audit log as ``understudy rollout history``, so what the
demo says happened is what was recorded, whoever made the change.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import structlog
from sqlalchemy import exc as sa_exc

from core import RolloutMode
from core.verdict import MetricName
from rollout.changes import RolloutAction
from rollout.controller import ACTOR as CONTROLLER
from rollout.plan import Promotion, Stage, StagePlan, default_plan
from rollout.views import verdict_lines
from storage.database import Database
from storage.flags import AuditEntry, audit_entries
from understudy.plan_settings import StageSettings

log = structlog.get_logger("understudy.demo")

_DB_ERRORS = (OSError, TimeoutError, sa_exc.SQLAlchemyError)


class Scenario(StrEnum):
    HEALTHY = "healthy"  # a candidate as good as the primary, and faster: promoted to 100 %
    REGRESSION = "regression"  # the same candidate degrades part-way: rolled back


# What each demo stage waits for: these pairs (the verdict trusts its intervals only
# from its burn-in of 30 values), these seconds, and these metrics inside their margins.
# The gates are the latency ratios, which a faster candidate passes in a few dozen pairs;
# showing an error rate within its 1-point margin takes hundreds, longer than a stage here.
STAGE_MIN_PAIRS = 30
STAGE_MIN_S = 3.0
STAGE_GATES = (MetricName.LATENCY_TOTAL, MetricName.LATENCY_TTFT)
CONTROLLER_INTERVAL_S = 1.0
REGRESSION_FROM_PERCENT = 50.0  # the regression scenario's candidate degrades at this stage
AT_LAST_STAGE_S = 5.0  # how long the story watches the last stage before it ends
POLL_S = 0.25  # how often the audit log is read


def demo_stages() -> list[StageSettings]:
    """The default plan's stages (shadow, 5 ... 95, 100 %), each short and automatic."""
    return [
        StageSettings(
            name=s.name,
            mode=s.mode,
            percent=s.percent,
            min_units=STAGE_MIN_PAIRS,
            min_duration=STAGE_MIN_S,
            max_duration=None,
            gates=list(STAGE_GATES),
            promotion=Promotion.AUTO,
        )
        for s in default_plan().stages
    ]


def stage_of(plan: StagePlan, row: Mapping[str, Any] | None) -> Stage | None:
    """The plan's stage for an audit entry's before or after row; None when off the plan."""
    if row is None or row.get("candidate") is None:
        return None
    return plan.locate(
        row.get("stage"), RolloutMode(row["mode"]), float(row["percent"]), row["candidate"]
    )


def _where(plan: StagePlan, row: Mapping[str, Any] | None) -> str:
    stage = stage_of(plan, row)
    if stage is not None:
        return stage.name
    return "off" if row is None or row.get("candidate") is None else str(row["mode"])


def tell(plan: StagePlan, e: AuditEntry) -> list[str]:
    """One audit entry in words: what moved, who moved it and why, and the verdict behind it."""
    was, now = _where(plan, e.before), _where(plan, e.after)
    reason = e.reason or "no reason given"
    by = "" if e.actor == CONTROLLER else f" (by {e.actor})"
    if e.action == RolloutAction.PROMOTE:
        head = f"{was} -> {now}: {reason}{by}"
    elif e.action == RolloutAction.ROLLBACK:
        head = (
            f"{was} -> {now}: {reason}{by}; the candidate serves nobody now and the rollout "
            "is paused until a person resumes it"
        )
    elif e.action == RolloutAction.HOLD:
        head = f"{now}: held for a person: {reason}{by}"
    else:
        moved = f"{was} -> {now}" if was != now else now
        head = f"{moved}: {e.action} by {e.actor}: {reason}"
    return [head, *(f"    {line}" for line in verdict_lines(e.verdict))]


def _stops(e: AuditEntry) -> str | None:
    """Why nothing more will happen after ``e`` without a person, else None."""
    if e.action == RolloutAction.ROLLBACK:
        return "the candidate was rolled back"
    after = e.after or {}
    if after.get("killed"):
        return "the rollout is killed: every request goes to the primary"
    if after.get("paused"):
        return "the rollout is paused: a person decides what happens next"
    return None


@dataclass(frozen=True, slots=True)
class StoryEnd:
    why: str


class Storyteller:
    """Follows the audit log from ``after_id`` on, tells each change as it appears, and
    says when the story is told: the last stage held for a while, a rollback, or a hold.

    ``on_stage`` hears of every stage the rollout enters, so a scenario can act on it.
    """

    def __init__(
        self,
        db: Database,
        plan: StagePlan,
        write: Callable[[str], None],
        *,
        after_id: int,
        on_stage: Callable[[Stage], None] = lambda _stage: None,
    ) -> None:
        self._db = db
        self._plan = plan
        self._write = write
        self._last_id = after_id
        self._on_stage = on_stage
        self._started = time.monotonic()

    def _say(self, lines: list[str]) -> None:
        elapsed = time.monotonic() - self._started
        self._write(f"[{elapsed:5.1f}s] {lines[0]}")
        for line in lines[1:]:
            self._write(f"         {line}")

    async def _new_entries(self) -> list[AuditEntry]:
        # Newest first; more changes than this between two looks would lose the oldest.
        entries = await audit_entries(self._db, limit=50)
        fresh = sorted((e for e in entries if e.id > self._last_id), key=lambda e: e.id)
        if fresh:
            self._last_id = fresh[-1].id
        return fresh

    async def follow(self) -> StoryEnd:
        last = self._plan.stages[-1]
        at_last_since: float | None = None
        while True:
            try:
                fresh = await self._new_entries()
            except _DB_ERRORS as exc:
                # A busy database delays the story; the next look catches up.
                log.warning("demo_audit_read_failed", error=type(exc).__name__)
                fresh = []
            for e in fresh:
                self._say(tell(self._plan, e))
                stage = stage_of(self._plan, e.after)
                if stage is not None:
                    self._on_stage(stage)
                if (stopped := _stops(e)) is not None:
                    return StoryEnd(stopped)
                at_last_since = time.monotonic() if stage == last else None
            if at_last_since is not None and time.monotonic() - at_last_since >= AT_LAST_STAGE_S:
                return StoryEnd(f"the candidate serves {last.name} of users")
            await asyncio.sleep(POLL_S)
