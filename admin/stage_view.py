"""Where the rollout stands on the stage plan, and what its next gate waits for, as JSON.

The position is the controller's own (``rollout.position.locate_stage``); this only
states the current stage's requirements. Whether the evidence meets them is the
stage's report, which the controller computes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rollout.plan import Promotion, StagePlan
from rollout.position import StagePosition
from rollout.views import when


def stage_json(plan: StagePlan, at: StagePosition | None, now: datetime) -> dict[str, Any]:
    position = at.position if at is not None else None
    stage = position.stage if position is not None else None
    if position is None or stage is None:
        return {
            "stage": None,
            "stage_entered_at": None,
            "time_in_stage_s": None,
            "next_gate": None,  # off the plan: nothing moves automatically
        }
    in_stage = (now - position.entered_at).total_seconds()
    following = plan.after(stage)
    waits_for = []
    if position.killed:
        waits_for.append("unkill: the rollout is killed")
    if position.paused:
        waits_for.append("resume: the rollout is paused")
    if following is not None:
        if in_stage < stage.min_duration_s:
            waits_for.append(f"{stage.min_duration_s - in_stage:.0f} s more in the stage")
        units = "pairs" if stage.percent == 0 else "candidate-served requests"
        minimum = f"at least {stage.min_units} {units}" if stage.min_units else f"enough {units}"
        gates = ", ".join(stage.gates) or "every metric"
        waits_for.append(f"a verdict that allows promotion on {gates}, from {minimum}")
        if stage.promotion is Promotion.MANUAL:
            waits_for.append("a person to promote: this stage is not promoted automatically")
    return {
        "stage": stage.name,
        "stage_entered_at": when(position.entered_at),
        "time_in_stage_s": round(in_stage, 3),
        "next_gate": None
        if following is None
        else {
            "to": following.name,
            "promotion": stage.promotion.value,
            "min_duration_s": stage.min_duration_s,
            "max_duration_s": stage.max_duration_s,
            "min_units": stage.min_units,
            "gates": list(stage.gates),
            "waits_for": waits_for,
        },
    }
