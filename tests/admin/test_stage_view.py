"""What GET rollout says of the stage plan: the stage, its clock and the next gate's needs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from admin.stage_view import stage_json
from rollout.plan import Stage
from rollout.position import StagePosition
from rollout.reconcile import Position
from storage.flags import FlagRecord
from understudy.plan_settings import default_stage_settings, stage_plan

PLAN = stage_plan(default_stage_settings())
NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)
ROW = FlagRecord(None, "split", "local", 5.0, 1.0, 0.0)


def at(
    stage: Stage | None, minutes: float, *, paused: bool = False, killed: bool = False
) -> StagePosition:
    entered = NOW - timedelta(minutes=minutes)
    return StagePosition(Position(stage, entered, entered, paused, killed), ROW, 1)


def test_off_the_plan_there_is_no_gate() -> None:
    view = stage_json(PLAN, None, NOW)
    assert view == {
        "stage": None,
        "stage_entered_at": None,
        "time_in_stage_s": None,
        "next_gate": None,
    }
    assert stage_json(PLAN, at(None, 5), NOW)["next_gate"] is None


def test_an_automatic_stage_waits_for_its_time_and_a_verdict() -> None:
    five = PLAN.stages[1]
    view = stage_json(PLAN, at(five, 20), NOW)
    assert view["stage"] == "5%" and view["time_in_stage_s"] == 1200
    assert view["stage_entered_at"] == "2026-01-01T11:40:00Z"
    gate = view["next_gate"]
    assert gate["to"] == "25%" and gate["promotion"] == "auto"
    assert gate["waits_for"] == [
        "2400 s more in the stage",
        "a verdict that allows promotion on every metric, from enough candidate-served requests",
    ]
    later = stage_json(PLAN, at(five, 90), NOW)["next_gate"]["waits_for"]
    assert len(later) == 1 and later[0].startswith("a verdict")


def test_manual_paused_killed_and_last_stages() -> None:
    shadow, last = PLAN.first, PLAN.stages[-1]
    gate = stage_json(PLAN, at(shadow, 120, paused=True, killed=True), NOW)["next_gate"]
    assert gate["waits_for"][:2] == [
        "unkill: the rollout is killed",
        "resume: the rollout is paused",
    ]
    assert "pairs" in gate["waits_for"][2]
    assert gate["waits_for"][-1].startswith("a person to promote")
    assert stage_json(PLAN, at(last, 5), NOW)["next_gate"] is None  # nowhere further to go
