"""Distribution-free quantile intervals and SLO tests."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from evaluation.quantiles import order_statistic_interval, slo_test


def test_order_statistic_interval_covers_at_the_nominal_rate() -> None:
    rng = np.random.default_rng(1)
    runs, n, q, alpha = 4000, 150, 0.9, 0.1
    truth = stats.expon.ppf(q)
    covered = 0
    for x in rng.exponential(size=(runs, n)):
        lo, hi = order_statistic_interval(x, q, alpha)
        covered += lo <= truth <= hi
    # Exact order-statistic intervals are conservative: coverage >= 1 - alpha.
    assert covered / runs >= 1 - alpha - 3 * math.sqrt(alpha * (1 - alpha) / runs)


def test_order_statistic_interval_is_unbounded_with_too_little_data() -> None:
    lo, hi = order_statistic_interval(np.array([1.0, 2.0, 3.0]), 0.95, 0.05)
    assert math.isfinite(lo) and hi == math.inf


def test_slo_test_binomial_p_value() -> None:
    x = np.concatenate([np.full(60, 500.0), np.full(40, 900.0)])
    result = slo_test(x, q=0.5, threshold=700.0, alpha=0.05)
    assert result.share_within == 0.6
    assert result.p_value == pytest.approx(stats.binom.sf(59, 100, 0.5))
    assert result.met is (result.p_value <= 0.05)
    missed = slo_test(x, q=0.95, threshold=700.0)
    assert not missed.met and missed.estimate == 900.0
