"""O'Brien–Fleming boundaries: exact integration checked by simulation and by known cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from evaluation.groupseq import (
    continuation_probability,
    obrien_fleming_bounds,
)


def _brownian_looks(times: tuple[float, ...], paths: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    increments = np.diff((0.0, *times))
    steps = rng.standard_normal((paths, len(times))) * np.sqrt(increments)
    return np.cumsum(steps, axis=1) / np.sqrt(times)  # z statistic at each look


def test_a_single_look_is_the_fixed_sample_test() -> None:
    assert obrien_fleming_bounds(0.05, (1.0,))[0] == pytest.approx(stats.norm.isf(0.025), abs=1e-6)
    assert obrien_fleming_bounds(0.05, (1.0,), two_sided=False)[0] == pytest.approx(
        stats.norm.isf(0.05), abs=1e-6
    )


def test_continuation_probability_matches_simulation_for_uneven_looks() -> None:
    times = (0.2, 0.5, 0.7, 1.0)
    upper = (3.0, 2.5, 2.2, 2.0)
    lower = (-math.inf, -2.5, -1.0, -3.0)
    exact = continuation_probability(upper, lower, times)
    z = _brownian_looks(times, 400_000, seed=1)
    simulated = np.mean(np.all((z < upper) & (z > lower), axis=1))
    assert exact == pytest.approx(simulated, abs=0.003)


@pytest.mark.parametrize("two_sided", [True, False])
def test_overall_crossing_probability_is_alpha(two_sided: bool) -> None:
    times = (140.0, 280.0, 420.0, 560.0, 700.0)
    bounds = np.array(obrien_fleming_bounds(0.0125, times, two_sided=two_sided))
    z = _brownian_looks(tuple(t / 700 for t in times), 1_000_000, seed=2)
    crossed = np.any(np.abs(z) >= bounds, axis=1) if two_sided else np.any(z >= bounds, axis=1)
    assert crossed.mean() == pytest.approx(0.0125, abs=0.0005)


def test_bounds_follow_the_obrien_fleming_shape() -> None:
    times = (0.1, 0.3, 0.6, 1.0)
    bounds = obrien_fleming_bounds(0.05, times)
    c = bounds[-1]
    assert bounds == pytest.approx(tuple(c / math.sqrt(t) for t in times))
