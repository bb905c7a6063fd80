"""Seeded simulations: the verdict, replayed after every new pair, keeps its error rates.

A false decision counts once per run if it happens at any row. With R runs and
a per-run error probability of at most alpha, the count should not exceed the
99.9 % binomial quantile.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from core import Decision, Direction
from evaluation.config import EvaluationConfig, MetricSpec
from evaluation.paths import decision_path
from evaluation.verdict import FAIL
from tests.evaluation.factories import split_input
from tests.evaluation.simulate import (
    MEDIAN_TOTAL_MS,
    Scenario,
    realised_quantile_ratio,
    shadow_run,
    tail_scenario,
    total_log_sd,
)

pytestmark = pytest.mark.slow

ALPHA = 0.05
LOWER = Direction.LOWER_IS_BETTER


def _bound(runs: int, alpha: float = ALPHA) -> float:
    return float(stats.binom.ppf(0.999, runs, alpha))


def _first_decisions(
    scenario: Scenario, config: EvaluationConfig, runs: int, rows: int, seed: int
) -> list[tuple[int | None, int | None]]:
    """(first rollback row, first promote row) per run, checking after every pair."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(runs):
        path = decision_path(shadow_run(rows, scenario, rng), config)
        out.append((path.first(Decision.ROLLBACK), path.first(Decision.PROMOTE)))
    return out


def test_aa_false_rollbacks_stay_within_alpha() -> None:
    runs, rows = 300, 2000
    results = _first_decisions(Scenario(), EvaluationConfig(alpha=ALPHA), runs, rows, seed=101)
    false_rollbacks = sum(rollback is not None for rollback, _ in results)
    assert false_rollbacks <= _bound(runs)


def _alone(spec: MetricSpec) -> EvaluationConfig:
    """One metric decides alone, so it is tested at the full alpha (stricter than in a group)."""
    return EvaluationConfig(alpha=ALPHA, metrics=(spec,))


AT_MARGIN = {
    "latency_total": (
        MetricSpec("latency_total", 1.10, LOWER, guardrail=True),
        Scenario(slowdown=1.10),
    ),
    "latency_p95": (
        MetricSpec("latency_p95", 1.10, LOWER, guardrail=True),
        Scenario(slowdown=1.10),
    ),
    "quality": (
        MetricSpec("quality", 0.55, LOWER, guardrail=True),
        Scenario(win=0.315, loss=0.385, judged_share=1.0),  # loses exactly 55 % of non-ties
    ),
    "slo_total_p95": (
        MetricSpec(
            "slo_total_p95",
            float(MEDIAN_TOTAL_MS * np.exp(stats.norm.ppf(0.95) * total_log_sd())),
            LOWER,
            guardrail=True,
        ),
        Scenario(),  # the candidate's true p95 is exactly the SLO
    ),
}


@pytest.mark.parametrize("metric", list(AT_MARGIN))
def test_at_the_margin_neither_promote_nor_rollback_exceeds_alpha(metric: str) -> None:
    spec, scenario = AT_MARGIN[metric]
    runs, rows = 300, 2000
    results = _first_decisions(scenario, _alone(spec), runs, rows, seed=202)
    false_rollbacks = sum(rollback is not None for rollback, _ in results)
    false_promotes = sum(promote is not None for _, promote in results)
    assert false_rollbacks <= _bound(runs)
    assert false_promotes <= _bound(runs)


def test_a_uniform_20_percent_slowdown_is_rolled_back_by_500_pairs() -> None:
    runs = 200
    results = _first_decisions(Scenario(slowdown=1.2), EvaluationConfig(), runs, 500, seed=303)
    caught = sum(rollback is not None for rollback, _ in results)
    assert caught / runs >= 0.8


def test_the_tail_scenario_moves_only_the_tail() -> None:
    rng = np.random.default_rng(7)
    assert realised_quantile_ratio(tail_scenario(), 0.95, rng) == pytest.approx(1.20, abs=0.01)
    assert realised_quantile_ratio(tail_scenario(), 0.50, rng) == pytest.approx(1.00, abs=0.01)


def test_a_tail_only_p95_regression_is_rolled_back_by_700_pairs() -> None:
    runs, rows = 200, 700
    config = EvaluationConfig()
    rng = np.random.default_rng(404)
    p95_index = [s.name for s in config.metrics].index("latency_p95")
    total_index = [s.name for s in config.metrics].index("latency_total")
    caught = total_failed = 0
    for _ in range(runs):
        path = decision_path(shadow_run(rows, tail_scenario(), rng), config)
        row = path.first(Decision.ROLLBACK)
        if row is not None:
            caught += 1
            assert path.labels[p95_index, row - 1] == FAIL  # the tail metric caught it
        total_failed += bool(np.any(path.labels[total_index] == FAIL))
    assert caught / runs >= 0.8
    # The typical-latency metric (a Wilcoxon-like view) does not see a tail-only change.
    assert total_failed <= _bound(runs)


def test_split_mode_aa_false_rollbacks_stay_within_alpha() -> None:
    runs, rows = 200, 3000
    config = EvaluationConfig(alpha=ALPHA)
    false_rollbacks = 0
    for run in range(runs):
        path = decision_path(split_input(rows, seed=10_000 + run, users=600), config)
        false_rollbacks += path.first(Decision.ROLLBACK) is not None
    assert false_rollbacks <= _bound(runs)
