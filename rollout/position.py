"""Where the rollout stands on the plan, read from its row's history.

A stage's window is its own flag versions: it begins at the first version of the
newest unbroken run of rows on the same stage with the same candidate. Pausing,
resuming or a kill keep the run; a promotion, a rollback or a share set by hand
start a new one, and with it fresh statistics.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from core import RolloutMode
from rollout.plan import Stage, StagePlan
from rollout.reconcile import Position
from storage.flags import FlagRecord


@dataclass(frozen=True, slots=True)
class StagePosition:
    position: Position
    current: FlagRecord  # the row now in force
    first_version: int  # the stage window's first flag version


def _stage_of(plan: StagePlan, row: FlagRecord) -> Stage | None:
    return plan.locate(row.stage, RolloutMode(row.mode), row.percent, row.candidate)


def _at(row: FlagRecord) -> datetime:
    if row.changed_at is None:
        raise ValueError("a stored flag row without its time")
    return row.changed_at


def locate_stage(plan: StagePlan, history: Sequence[FlagRecord]) -> StagePosition:
    """``history``: one route's rows, newest first (at least one)."""
    current = history[0]
    stage = _stage_of(plan, current)
    run = [current]
    for row in history[1:]:
        if _stage_of(plan, row) != stage or row.candidate != current.candidate:
            break
        run.append(row)
    start = run[-1]
    resumed = next(
        (newer for newer, older in itertools.pairwise(run) if older.paused and not newer.paused),
        start,
    )
    return StagePosition(
        Position(
            stage=stage,
            entered_at=_at(start),
            running_since=_at(resumed),
            paused=current.paused,
            killed=current.killed,
        ),
        current,
        start.version,
    )
