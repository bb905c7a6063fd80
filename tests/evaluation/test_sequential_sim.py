"""Seeded simulations: the verdict, replayed after every new pair, keeps its error rates.

A false decision counts once per run if it happens at any row. With R runs and
a per-run error probability of at most alpha, the count should not exceed the
99.9 % binomial quantile. The A/A and at-the-margin checks over many traffic
shapes are in ``test_decision_targets``.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from core import Decision
from evaluation.config import EvaluationConfig
from evaluation.paths import decision_path
from evaluation.verdict import FAIL
from tests.evaluation.factories import split_input
from tests.evaluation.simulate import (
    Scenario,
    realised_quantile_ratio,
    shadow_run,
    tail_scenario,
)

pytestmark = pytest.mark.slow

ALPHA = 0.05


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
    """The slowest tenth 20 % slower: the p95 sees it, and so does the mean of log ratios,
    which moves by about 2 % (harm is "worse at all"), so either may act first."""
    runs, rows = 200, 700
    config = EvaluationConfig()
    rng = np.random.default_rng(404)
    p95_index = [s.name for s in config.metrics].index("latency_p95")
    caught = p95_failed = 0
    for _ in range(runs):
        path = decision_path(shadow_run(rows, tail_scenario(), rng), config)
        caught += path.first(Decision.ROLLBACK) is not None
        p95_failed += bool(np.any(path.labels[p95_index] == FAIL))
    assert caught / runs >= 0.8
    assert p95_failed / runs >= 0.5  # the tail metric finds it on its own too


def test_split_mode_aa_false_rollbacks_stay_within_alpha() -> None:
    runs, rows = 120, 3000
    config = EvaluationConfig(alpha=ALPHA)
    false_rollbacks = 0
    for run in range(runs):
        path = decision_path(split_input(rows, seed=10_000 + run, users=600), config)
        false_rollbacks += path.first(Decision.ROLLBACK) is not None
    assert false_rollbacks <= _bound(runs)
