"""A seeded simulation of the controller: reconcile at every look over fresh stage windows.

Each stage gets its own traffic and its own statistics, as the controller's stage
windows do; the controller looks every ``LOOK`` units and acts on the verdict of
that moment. A stage's false rollback (an equal candidate) and false promotion (a
candidate at the margin) each have probability at most alpha, so their counts over
all stage runs must stay within the 99.9 % binomial quantile. Traffic is shadow
pairs at every stage: the controller's rules do not depend on the mode.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from scipy import stats

from core import Verdict
from evaluation.paths import decision_path
from evaluation.verdict import DECISIONS
from rollout.plan import StagePlan
from rollout.reconcile import Position, TransitionKind, reconcile
from tests.evaluation.simulate import Scenario, shadow_run
from understudy.controller_wiring import stage_config
from understudy.plan_settings import stage_plan
from understudy.settings import Settings, load_settings

pytestmark = pytest.mark.slow

ALPHA = 0.05
LOOK = 50  # units between two looks of the controller
ROWS = 2000  # a stage's traffic; a stage still undecided after it counts as continuing
GATES = ["latency_total", "latency_p95", "error_rate", "latency_ttft"]
START = datetime(2026, 1, 1, tzinfo=UTC)


def settings(harm_threshold: float) -> Settings:
    stages = [
        {"name": "shadow", "mode": "shadow", "min_units": 300, "min_duration": "10m"},
        {"name": "5%", "mode": "split", "percent": 5, "min_units": 300},
        {"name": "50%", "mode": "split", "percent": 50, "min_units": 300},
        {"name": "100%", "mode": "cutover", "percent": 100},
    ]
    return load_settings(
        rollout={"plan": [{**s, "gates": GATES} for s in stages]},
        evaluation={"alpha": ALPHA, "harm_threshold": harm_threshold},
    )


@dataclass(frozen=True)
class Report:
    verdict: Verdict


def run_rollout(
    plan: StagePlan, s: Settings, scenario: Scenario, rng: np.random.Generator
) -> list[TransitionKind | None]:
    """One rollout from the first stage: what ended each stage it went through (None: nothing
    within ``ROWS`` units). Looks are a minute apart."""
    outcomes: list[TransitionKind | None] = []
    stage = plan.first
    now = START
    while plan.after(stage) is not None:
        config = stage_config(s, stage)
        path = decision_path(shadow_run(ROWS, scenario, rng), config)
        entered = now
        outcome = None
        for units in range(LOOK, ROWS + 1, LOOK):
            now += timedelta(minutes=1)
            decision = DECISIONS[int(path.decisions[units - 1])]
            verdict = Verdict(decision, decision.value, (), units, config.min_samples, None, ALPHA)
            position = Position(stage=stage, entered_at=entered, running_since=entered)
            transition = reconcile(plan, position, Report(verdict), now)
            if transition is not None:
                outcome = transition.kind
                break
        outcomes.append(outcome)
        if outcome is not TransitionKind.PROMOTE or transition is None:
            break
        stage = transition.to
    return outcomes


def bound(trials: int) -> float:
    return float(stats.binom.ppf(0.999, trials, ALPHA))


def test_aa_false_rollbacks_per_stage_stay_within_alpha(figure: Callable[[str], None]) -> None:
    s = settings(harm_threshold=0.0)
    plan = stage_plan(s.rollout.plan)
    rng = np.random.default_rng(20260301)
    runs = [run_rollout(plan, s, Scenario(), rng) for _ in range(100)]
    stage_runs = Counter(kind for run in runs for kind in run)
    trials = sum(stage_runs.values())
    rollbacks = stage_runs[TransitionKind.ROLLBACK]
    last = len(plan.stages) - 1
    completed = sum(len(run) == last and run[-1] is TransitionKind.PROMOTE for run in runs)
    figure(
        f"A/A: {rollbacks} false rollbacks in {trials} stage runs (bound {bound(trials):g}); "
        f"{completed}/100 rollouts reached the last stage; outcomes {dict(stage_runs)}"
    )
    assert rollbacks <= bound(trials)
    # The simulation exercises promotion too: an equal candidate mostly moves on.
    assert stage_runs[TransitionKind.PROMOTE] > trials / 2


def test_at_the_margin_false_promotions_per_stage_stay_within_alpha(
    figure: Callable[[str], None],
) -> None:
    # A harm limit beyond the margin: a candidate exactly at the margin is neither promoted
    # (at most alpha) nor proven harmful.
    s = settings(harm_threshold=0.2)
    plan = stage_plan(s.rollout.plan)
    rng = np.random.default_rng(20260302)
    config = stage_config(s, plan.first)
    margin = next(m.margin for m in config.metrics if m.name == "latency_total")
    runs = [run_rollout(plan, s, Scenario(slowdown=margin), rng) for _ in range(100)]
    stage_runs = Counter(kind for run in runs for kind in run)
    trials = sum(stage_runs.values())
    promotions = stage_runs[TransitionKind.PROMOTE]
    figure(
        f"at the margin: {promotions} false promotions in {trials} stage runs "
        f"(bound {bound(trials):g}); outcomes {dict(stage_runs)}"
    )
    assert promotions <= bound(trials)
