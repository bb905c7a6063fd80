"""Betting bounds on counts, quantile sequences and planned sizes, on seeded data."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from core import Direction
from evaluation.config import EvaluationConfig, MetricSpec
from evaluation.confseq import binomial_rank_boundary, count_betting_bounds
from evaluation.planning import planned_count_size, planned_size, planning_distance
from evaluation.quantile_metrics import quantile_cs
from evaluation.verdict import context

ERROR_POINTS = (-1.0, 0.0, 1.0)


def _bound(runs: int, alpha: float) -> float:
    return float(stats.binom.ppf(0.999, runs, alpha))


def test_count_bounds_cover_the_mean_at_every_time_with_separate_alphas() -> None:
    rng = np.random.default_rng(21)
    runs, n = 200, 600
    p_minus, p_plus = 0.02, 0.03  # true mean +0.01, like 2 % -> 3 % errors
    draws = rng.random((runs, n))
    values = np.where(draws < p_minus, 0, np.where(draws < p_minus + p_plus, 2, 1))
    counts = np.cumsum(values[..., None] == np.arange(3), axis=1)
    lower, upper = count_betting_bounds(counts, ERROR_POINTS, -1.0, 1.0, 0.0125, 0.05)
    truth = p_plus - p_minus
    assert np.any(lower > truth, axis=1).sum() <= _bound(runs, 0.0125)
    assert np.any(upper < truth, axis=1).sum() <= _bound(runs, 0.05)
    mean = np.cumsum(values - 1, axis=1) / np.arange(1, n + 1)
    assert np.all(lower <= mean + 1e-12) and np.all(mean <= upper + 1e-12)


def test_count_bounds_are_tight_enough_to_decide_near_a_margin() -> None:
    # 10 000 pairs with 1 % discordant each way: within a quarter point of zero.
    counts = np.array([100.0, 9800.0, 100.0])
    lower, upper = count_betting_bounds(counts, ERROR_POINTS, -1.0, 1.0, 0.05, 0.05)
    assert -0.0045 < float(lower) < 0.0 < float(upper) < 0.0045
    # The smaller alpha is the wider end.
    strict, _ = count_betting_bounds(counts, ERROR_POINTS, -1.0, 1.0, 0.001, 0.05)
    assert float(strict) < float(lower)


def test_count_bounds_at_the_ends_of_the_range() -> None:
    lower, upper = count_betting_bounds(
        np.array([[10.0, 0.0], [0.0, 10.0]]), (0.0, 1.0), 0.0, 1.0, 0.05, 0.05
    )
    assert lower[0] == 0.0 and 0.0 < upper[0] < 1.0
    assert upper[1] == 1.0 and 0.0 < lower[1] < 1.0
    with pytest.raises(ValueError):
        count_betting_bounds(np.array([1.0, 1.0]), (0.0, 2.0), 0.0, 1.0, 0.05, 0.05)
    with pytest.raises(ValueError):
        count_betting_bounds(np.array([1.0, 1.0]), (0.0, 1.0), 0.0, 1.0, 0.0, 0.05)


def test_the_rank_boundary_grows_slower_than_t() -> None:
    sizes = [binomial_rank_boundary(0.95, 0.05, t) for t in (10, 100, 1000, 10_000)]
    assert all(a < b for a, b in itertools.pairwise(sizes))
    assert sizes[-1] / 10_000 < sizes[1] / 100
    with pytest.raises(ValueError):
        binomial_rank_boundary(0.95, 0.05, 0)


def _slo_context(alpha: float, threshold: float) -> object:
    spec = MetricSpec("slo_total_p95", threshold, Direction.LOWER_IS_BETTER)
    return context(EvaluationConfig(alpha=alpha, metrics=(spec,)), spec)


def test_quantile_sequence_covers_the_p95_at_every_look() -> None:
    rng = np.random.default_rng(8)
    runs, n, alpha = 200, 1000, 0.05
    truth = math.exp(stats.norm.ppf(0.95))
    ctx = _slo_context(alpha, 2.0)
    misses_low = misses_high = 0
    for _ in range(runs):
        x = np.round(np.exp(rng.standard_normal(n)), 2)  # ties, as rounded latencies have
        looks = [quantile_cs(x[:t], 0.95, ctx) for t in range(25, n + 1, 25)]  # type: ignore[arg-type]
        misses_high += any(r.lower > truth for r in looks)
        misses_low += any(r.upper < truth for r in looks)
    assert misses_high <= _bound(runs, alpha) and misses_low <= _bound(runs, alpha)


def test_quantile_sequence_is_infinite_where_the_data_cannot_bound_it() -> None:
    ctx = _slo_context(0.05, 2.0)
    few = quantile_cs(np.arange(1.0, 11.0), 0.95, ctx)  # type: ignore[arg-type]
    assert few.upper == math.inf and few.lower > -math.inf
    assert quantile_cs(np.empty(0), 0.95, ctx).n == 0  # type: ignore[arg-type]


def test_planned_sizes_shrink_with_distance_and_grow_with_noise() -> None:
    near = planned_size(0.01, 0.1, 0.05, 1000.0, 0.8)
    far = planned_size(0.02, 0.1, 0.05, 1000.0, 0.8)
    noisy = planned_size(0.01, 0.2, 0.05, 1000.0, 0.8)
    assert near is not None and far is not None and noisy is not None
    assert far < near < noisy
    assert planned_size(0.0, 0.1, 0.05, 1000.0, 0.8) is None
    assert planned_size(1e-6, 1.0, 0.05, 1000.0, 0.8) is None  # out of reach
    median = planned_size(0.01, 0.1, 0.05, 1000.0, 0.5)
    assert median is not None and median < near


def test_planned_count_sizes_follow_the_discordance() -> None:
    rare = planned_count_size((0.005, 0.99, 0.005), ERROR_POINTS, 0.0, 0.01, 0.05, 0.8, True)
    common = planned_count_size((0.02, 0.96, 0.02), ERROR_POINTS, 0.0, 0.01, 0.05, 0.8, True)
    assert rare is not None and common is not None and rare < common
    # Observed shares are made symmetric: a worse candidate is planned as an equal one.
    skewed = planned_count_size((0.0, 0.98, 0.02), ERROR_POINTS, 0.0, 0.01, 0.05, 0.8, True)
    assert skewed == planned_count_size(
        (0.01, 0.98, 0.01), ERROR_POINTS, 0.0, 0.01, 0.05, 0.8, True
    )
    assert planned_count_size((0.0, 1.0, 0.0), ERROR_POINTS, 0.0, 0.01, 0.05, 0.8, True) is None


def test_planning_credits_only_what_the_interval_shows() -> None:
    assert planning_distance(0.1, 0.0, 0.05, worse_is_higher=True) == pytest.approx(0.1)
    assert planning_distance(0.1, 0.0, -0.05, worse_is_higher=True) == pytest.approx(0.15)
    assert planning_distance(-0.1, 0.0, 0.05, worse_is_higher=False) == pytest.approx(0.15)
    assert planning_distance(0.1, 0.0, math.nan, worse_is_higher=True) == pytest.approx(0.1)
