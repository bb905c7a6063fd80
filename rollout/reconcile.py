"""``reconcile``: from the plan, where the rollout stands and the stage's report, the next step.

Pure, like routing's ``decide``: same inputs, same answer, no clock and no I/O.
The verdict is made for the stage (its own window, its gates, its minimum
number of units), so a promote decision already means "enough evidence"; this
adds what only the plan knows: time in the stage, manual promotion, the last
stage, and what to do when nothing is decided for too long (hold, never promote).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from core import Decision, Verdict
from rollout.plan import Promotion, Stage, StagePlan


class TransitionKind(StrEnum):
    PROMOTE = "promote"  # to the next stage
    HOLD = "hold"  # pause here and ask a person
    ROLLBACK = "rollback"  # candidate share to 0, back to the shadow stage, paused


@dataclass(frozen=True, slots=True)
class Transition:
    kind: TransitionKind
    to: Stage  # the stage the rollout is in afterwards
    reason: str


@dataclass(frozen=True, slots=True)
class Position:
    """Where the rollout stands: its stage on the plan and that stage's clock."""

    stage: Stage | None  # None: off the plan (off, no candidate, or a share set by hand)
    entered_at: datetime  # when the stage's window began
    running_since: datetime  # the later of entering and the last resume: max duration counts here
    paused: bool = False
    killed: bool = False


class HasVerdict(Protocol):
    @property
    def verdict(self) -> Verdict: ...


def _duration(seconds: float) -> str:
    for size, unit in ((86_400.0, "d"), (3_600.0, "h"), (60.0, "m")):
        if seconds >= size:
            return f"{seconds / size:.3g}{unit}"
    return f"{seconds:.3g}s"


def reconcile(
    plan: StagePlan, state: Position, report: HasVerdict | None, now: datetime
) -> Transition | None:
    """The transition to make now, or None to keep collecting.

    ``report`` None means the stage has no data yet. Nothing moves while paused
    or killed, or off the plan.
    """
    stage = state.stage
    if stage is None or state.paused or state.killed:
        return None
    verdict = report.verdict if report is not None else None
    if verdict is not None and verdict.decision is Decision.ROLLBACK:
        return Transition(TransitionKind.ROLLBACK, plan.first, verdict.reason)
    if verdict is not None and verdict.decision is Decision.HOLD:
        return Transition(TransitionKind.HOLD, stage, verdict.reason)
    in_stage = (now - state.entered_at).total_seconds()
    running = (now - state.running_since).total_seconds()
    following = plan.after(stage)
    if (
        verdict is not None
        and verdict.decision is Decision.PROMOTE
        and following is not None
        and stage.promotion is Promotion.AUTO
        and in_stage >= stage.min_duration_s
    ):
        return Transition(TransitionKind.PROMOTE, following, verdict.reason)
    limit = stage.max_duration_s
    if limit is not None and following is not None and running >= limit:
        if verdict is None:
            why = "no data"
        elif verdict.decision is Decision.PROMOTE:
            why = "the verdict allows promotion, which this stage leaves to a person"
        else:
            why = verdict.reason
        return Transition(
            TransitionKind.HOLD,
            stage,
            f"no promotion after {_duration(running)} in stage {stage.name} "
            f"(max {_duration(limit)}): {why}",
        )
    return None
