"""The changes a person can make to the rollout, and the rules each one must pass.

Each change is a pure function from the route's current row to its next row; the
store appends the result with an audit entry. Refusals name the field and say why.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum

from core import RolloutMode, Route, UnderstudyError
from rollout.plan import Stage, StagePlan
from rollout.state import (
    EMBEDDINGS_SPLIT_SETTING,
    EMBEDDINGS_WHY,
    SERVING_MODES,
    RolloutRules,
    embeddings_held,
    row_for,
)
from storage.flags import FlagRecord


class RolloutAction(StrEnum):
    SEED = "seed"  # the first row, from the settings
    SET = "set"
    PAUSE = "pause"
    RESUME = "resume"
    KILL = "kill"
    UNKILL = "unkill"
    PROMOTE = "promote"  # to the plan's next stage
    ROLLBACK = "rollback"  # candidate share to 0, back to the plan's shadow stage, paused
    HOLD = "hold"  # paused for a person, by the controller


class RolloutRefused(UnderstudyError):
    """A change that breaks a rule; nothing was written."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True, slots=True)
class NewValues:
    """New values for ``set``; None leaves a value as it is."""

    mode: RolloutMode | None = None
    candidate: str | None = None
    percent: float | None = None
    shadow_rate: float | None = None
    noise_rate: float | None = None
    reverse_shadow_rate: float | None = None

    def is_empty(self) -> bool:
        return all(
            v is None
            for v in (
                self.mode,
                self.candidate,
                self.percent,
                self.shadow_rate,
                self.noise_rate,
                self.reverse_shadow_rate,
            )
        )


def _share(field: str, value: float | None, top: float) -> None:
    if value is not None and not (math.isfinite(value) and 0 <= value <= top):
        raise RolloutRefused(field, f"must be between 0 and {top:g}, got {value:g}")


def _mode_for_percent(current: RolloutMode, percent: float) -> RolloutMode:
    """``set --percent`` alone: a share above 0 is a split; 0 ends a split in shadow."""
    if percent > 0:
        return RolloutMode.SPLIT
    return RolloutMode.SHADOW if current in SERVING_MODES else current


def set_values(
    current: FlagRecord, new: NewValues, route: Route | None, rules: RolloutRules
) -> FlagRecord:
    if new.is_empty():
        raise RolloutRefused(
            "set",
            "give at least one of --mode, --candidate, --percent, --shadow-rate, --noise-rate, "
            "--reverse-shadow-rate",
        )
    _share("percent", new.percent, 100)
    _share("shadow_rate", new.shadow_rate, 1)
    _share("noise_rate", new.noise_rate, 1)
    _share("reverse_shadow_rate", new.reverse_shadow_rate, 1)
    if new.candidate is not None and new.candidate not in rules.candidates:
        known = ", ".join(rules.candidates) or "none"
        raise RolloutRefused(
            "candidate", f"unknown candidate {new.candidate!r}: configured candidates are {known}"
        )
    mode = new.mode or current_mode(current)
    if new.mode is None and new.percent is not None:
        mode = _mode_for_percent(mode, new.percent)
    candidate = new.candidate or current.candidate
    if mode is not RolloutMode.OFF and candidate is None:
        raise RolloutRefused("candidate", f"mode {mode.value} needs a candidate: give --candidate")
    if embeddings_held(route, mode, rules):
        raise RolloutRefused(
            "mode",
            f"embeddings stay in shadow: {EMBEDDINGS_WHY}. Set {EMBEDDINGS_SPLIT_SETTING}=true "
            "only if every index is rebuilt with the candidate's vectors",
        )
    return replace(
        current,
        mode=mode.value,
        candidate=candidate,
        percent=current.percent if new.percent is None else new.percent,
        shadow_rate=current.shadow_rate if new.shadow_rate is None else new.shadow_rate,
        noise_rate=current.noise_rate if new.noise_rate is None else new.noise_rate,
        reverse_shadow_rate=current.reverse_shadow_rate
        if new.reverse_shadow_rate is None
        else new.reverse_shadow_rate,
    )


@dataclass(frozen=True, slots=True)
class StageMove:
    """Where a promotion or rollback takes the rollout: a stage of the plan."""

    stage: str
    mode: RolloutMode
    percent: float
    paused: bool = False


def stage_move(
    plan: StagePlan, action: RolloutAction, row: FlagRecord
) -> tuple[Stage | None, Stage, StageMove]:
    """A person's promote or rollback from ``row``: the stage it stands on, the stage it
    goes to, and the move. A rollback goes to the plan's first (shadow) stage, paused."""
    stage = plan.locate(row.stage, RolloutMode(row.mode), row.percent, row.candidate)
    if action is RolloutAction.ROLLBACK:
        to = plan.first
    else:
        if row.candidate is None or row.mode == RolloutMode.OFF:
            raise RolloutRefused("candidate", "the rollout is off: set a candidate and mode first")
        following = (
            plan.after(stage)
            if stage is not None
            else plan.next_from(RolloutMode(row.mode), row.percent)
        )
        if following is None:
            where = f"the last stage, {stage.name}" if stage else "the plan's end"
            raise RolloutRefused("stage", f"already at {where}: there is no stage to promote to")
        to = following
    paused = action is RolloutAction.ROLLBACK
    return stage, to, StageMove(to.name, to.mode, to.percent, paused=paused)


def move_to_stage(current: FlagRecord, move: StageMove) -> FlagRecord:
    if current.candidate is None:
        raise RolloutRefused("candidate", "the rollout has no candidate: set one with --candidate")
    return replace(
        current, stage=move.stage, mode=move.mode.value, percent=move.percent, paused=move.paused
    )


def current_mode(record: FlagRecord) -> RolloutMode:
    return RolloutMode(record.mode)


def _values(new: NewValues | StageMove | None) -> NewValues:
    if isinstance(new, StageMove):
        raise RolloutRefused("set", "a stage move is a promote or a rollback, not a set")
    return new or NewValues()


def base_row(rows: Mapping[str | None, FlagRecord], route: Route | None) -> FlagRecord:
    """The row a change to ``route`` starts from: its own, or a copy of the default."""
    return rows[None] if route is None else row_for(rows, route)


def apply(
    action: RolloutAction,
    current: FlagRecord,
    route: Route | None,
    rules: RolloutRules,
    new: NewValues | StageMove | None = None,
) -> FlagRecord:
    """The next row for ``route`` after ``action``; raises RolloutRefused."""
    match action:
        case RolloutAction.SET:
            return set_values(current, _values(new), route, rules)
        case RolloutAction.PROMOTE | RolloutAction.ROLLBACK:
            if not isinstance(new, StageMove):
                raise RolloutRefused("stage", f"{action.value} needs the stage to move to")
            return move_to_stage(current, new)
        case RolloutAction.PAUSE | RolloutAction.RESUME | RolloutAction.HOLD:
            return replace(current, paused=action is not RolloutAction.RESUME)
        case RolloutAction.KILL | RolloutAction.UNKILL:
            return replace(current, killed=action is RolloutAction.KILL)
        case RolloutAction.SEED:
            raise RolloutRefused("action", "the seed row is written only into an empty store")
