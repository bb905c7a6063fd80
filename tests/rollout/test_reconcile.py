"""reconcile() is pure: a table of plan, position and verdict cases, and the plan's own rules."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest

from core import ConfigError, Decision, RolloutMode, Verdict
from rollout.plan import Promotion, Stage, StagePlan, default_plan
from rollout.reconcile import Position, Transition, TransitionKind, reconcile

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
PLAN = StagePlan(
    (
        Stage("shadow", RolloutMode.SHADOW, 0, 100, 3600, 86400, (), Promotion.MANUAL),
        Stage("5%", RolloutMode.SPLIT, 5, 100, 3600, 86400),
        Stage("50%", RolloutMode.SPLIT, 50, 100, 3600, None),
        Stage("100%", RolloutMode.CUTOVER, 100, 100, 0, None, (), Promotion.MANUAL),
    )
)
SHADOW, FIVE, HALF, FULL = PLAN.stages


@dataclass(frozen=True)
class Report:
    verdict: Verdict


def report(decision: Decision, reason: str = "") -> Report:
    why = reason or f"{decision.value}: because"
    return Report(Verdict(decision, why, (), 600, 100, None, 0.05))


def at(stage: Stage | None, hours_in: float = 2, **kw: object) -> Position:
    entered = NOW - timedelta(hours=hours_in)
    return Position(stage=stage, entered_at=entered, running_since=entered, **kw)  # type: ignore[arg-type]


PROMOTE, CONTINUE, HOLD, ROLLBACK = (
    report(Decision.PROMOTE),
    report(Decision.CONTINUE),
    report(Decision.HOLD, "hold: error_rate could not be computed"),
    report(Decision.ROLLBACK, "rollback: guardrail beyond its harm limit (latency_total)"),
)
CASES: list[tuple[str, Position, Report | None, Transition | None]] = [
    (
        "auto stage, verdict promotes",
        at(FIVE),
        PROMOTE,
        Transition(TransitionKind.PROMOTE, HALF, PROMOTE.verdict.reason),
    ),
    ("too early in the stage", at(FIVE, hours_in=0.5), PROMOTE, None),
    ("manual stage waits for a person", at(SHADOW), PROMOTE, None),
    ("the last stage has nowhere to go", at(FULL), PROMOTE, None),
    ("continue keeps collecting", at(FIVE), CONTINUE, None),
    ("no data yet", at(FIVE), None, None),
    (
        "guardrail broke: back to shadow",
        at(HALF),
        ROLLBACK,
        Transition(TransitionKind.ROLLBACK, SHADOW, ROLLBACK.verdict.reason),
    ),
    (
        "rollback even early in the stage",
        at(FIVE, hours_in=0.01),
        ROLLBACK,
        Transition(TransitionKind.ROLLBACK, SHADOW, ROLLBACK.verdict.reason),
    ),
    (
        "rollback from cutover",
        at(FULL),
        ROLLBACK,
        Transition(TransitionKind.ROLLBACK, SHADOW, ROLLBACK.verdict.reason),
    ),
    ("verdict holds", at(FIVE), HOLD, Transition(TransitionKind.HOLD, FIVE, HOLD.verdict.reason)),
    ("paused: nothing moves", at(FIVE, paused=True), ROLLBACK, None),
    ("killed: nothing moves", at(FIVE, killed=True), PROMOTE, None),
    ("off the plan: nothing moves", at(None), ROLLBACK, None),
    ("no max duration: waits forever", at(HALF, hours_in=1000), CONTINUE, None),
]


@pytest.mark.parametrize(("name", "state", "given", "expected"), CASES, ids=[c[0] for c in CASES])
def test_reconcile_table(
    name: str, state: Position, given: Report | None, expected: Transition | None
) -> None:
    assert reconcile(PLAN, state, given, NOW) == expected


@pytest.mark.parametrize("given", [CONTINUE, None, PROMOTE], ids=["continue", "no data", "manual"])
def test_past_max_duration_holds_and_never_promotes(given: Report | None) -> None:
    stage = SHADOW if given is PROMOTE else FIVE
    found = reconcile(PLAN, at(stage, hours_in=25), given, NOW)
    assert found is not None and found.kind is TransitionKind.HOLD and found.to is stage
    assert "no promotion after 1.04d" in found.reason and "(max 1d)" in found.reason


def test_max_duration_counts_from_the_last_resume() -> None:
    resumed = replace(at(FIVE, hours_in=30), running_since=NOW - HOUR)
    assert reconcile(PLAN, resumed, CONTINUE, NOW) is None
    found = reconcile(PLAN, resumed, PROMOTE, NOW)
    assert found is not None and found.kind is TransitionKind.PROMOTE  # min duration: from entry


def test_default_plan_is_shadow_then_shares_then_cutover() -> None:
    plan = default_plan()
    assert [s.name for s in plan.stages] == ["shadow", "5%", "25%", "50%", "75%", "95%", "100%"]
    assert plan.first.mode is RolloutMode.SHADOW and plan.stages[-1].mode is RolloutMode.CUTOVER
    manual = [s.name for s in plan.stages if s.promotion is Promotion.MANUAL]
    assert manual == ["shadow", "95%", "100%"]


def test_locate_by_name_then_by_traffic() -> None:
    assert PLAN.locate("5%", RolloutMode.SPLIT, 5, "local") is FIVE
    assert PLAN.locate(None, RolloutMode.SHADOW, 0, "local") is SHADOW
    assert PLAN.locate("5%", RolloutMode.SPLIT, 50, "local") is HALF  # a share set by hand
    assert PLAN.locate("5%", RolloutMode.SPLIT, 30, "local") is None
    assert PLAN.locate("5%", RolloutMode.SPLIT, 5, None) is None
    assert PLAN.next_from(RolloutMode.SPLIT, 30) is HALF
    assert PLAN.after(FULL) is None


@pytest.mark.parametrize(
    ("stages", "message"),
    [
        ((), "needs at least one stage"),
        ((FIVE,), "first stage must be a shadow stage"),
        ((SHADOW, HALF, FIVE), "more traffic than the last"),
        ((SHADOW, replace(FIVE, name="shadow")), "names must be unique"),
        ((SHADOW, replace(FIVE, percent=0)), "percent above 0"),
        ((SHADOW, replace(FULL, percent=50)), "percent must be 100"),
        ((SHADOW, replace(FIVE, max_duration_s=60)), "max_duration must not be shorter"),
    ],
)
def test_plan_rules(stages: tuple[Stage, ...], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        StagePlan(stages)
