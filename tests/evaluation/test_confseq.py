"""Confidence sequences: time-uniform coverage on seeded data, and path/endpoint agreement."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from evaluation.confseq import betting_cs, normal_mixture_cs, normal_mixture_last


def test_betting_cs_never_misses_more_than_alpha_per_side_over_all_times() -> None:
    rng = np.random.default_rng(11)
    runs, n, alpha, p = 600, 1500, 0.05, 0.3
    path = betting_cs(rng.random((runs, n)) < p, alpha)
    misses_low = np.any(path.upper < p, axis=1).sum()
    misses_high = np.any(path.lower > p, axis=1).sum()
    bound = stats.binom.ppf(0.999, runs, alpha)
    assert misses_low <= bound and misses_high <= bound


def test_betting_cs_shrinks_and_never_widens() -> None:
    rng = np.random.default_rng(3)
    x = rng.random(5000)
    path = betting_cs(x, 0.05)
    width = path.upper - path.lower
    assert np.all(np.diff(width) <= 1e-12)
    assert width[99] > width[-1] and width[-1] < 0.05
    assert path.estimate[-1] == pytest.approx(x.mean())
    assert path.lower[-1] < 0.5 < path.upper[-1]


def test_betting_cs_rescales_to_the_given_range() -> None:
    rng = np.random.default_rng(4)
    d = rng.choice([-1.0, 0.0, 1.0], size=3000, p=[0.1, 0.7, 0.2])
    est, lo, hi = betting_cs(d, 0.05, lo=-1.0, hi=1.0).last()
    assert est == pytest.approx(d.mean())
    assert lo < 0.1 < hi  # true mean 0.2 - 0.1
    with pytest.raises(ValueError):
        betting_cs(np.array([2.0]), 0.05, lo=-1.0, hi=1.0)


def test_normal_mixture_cs_coverage_after_burn_in() -> None:
    rng = np.random.default_rng(12)
    runs, n, alpha, burn_in = 600, 2000, 0.05, 30
    path = normal_mixture_cs(rng.standard_normal((runs, n)), alpha)
    misses_high = np.any(path.lower[:, burn_in:] > 0, axis=1).sum()
    misses_low = np.any(path.upper[:, burn_in:] < 0, axis=1).sum()
    bound = stats.binom.ppf(0.999, runs, alpha)
    assert misses_high <= bound and misses_low <= bound


def test_normal_mixture_endpoint_equals_the_path() -> None:
    rng = np.random.default_rng(5)
    x = 3.0 + 0.2 * rng.standard_normal(777)
    path = normal_mixture_cs(x, 0.01, target_n=300)
    assert normal_mixture_last(x, 0.01, target_n=300) == pytest.approx(path.last())


def test_normal_mixture_is_wider_than_a_fixed_sample_interval() -> None:
    """The price of monitoring: wider than the t-interval at the same n."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal(500)
    _, lo, hi = normal_mixture_last(x, 0.025, target_n=500)
    t_half = stats.t.isf(0.025, 499) * x.std(ddof=1) / np.sqrt(500)
    assert (hi - lo) / 2 > 1.2 * t_half
