"""Fixed-sample statistics for split mode, where each user is served by one arm.

Assignment is sticky per user, so the user is the independent unit: intervals
come from resampling users, not requests. Mann–Whitney on requests is kept as
the familiar rank test but its p-value ignores that clustering.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from evaluation.resample import cluster_bootstrap_quantiles

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
IntArray = NDArray[np.int64]

BARNARD_MAX_ROWS = 200  # Barnard's exact test is slow; above this Fisher's is used


@dataclass(frozen=True, slots=True)
class SplitLatency:
    """Candidate vs primary latency from different users, as ratios of quantiles."""

    n_primary: int
    n_candidate: int
    users_primary: int
    users_candidate: int
    mann_whitney_p: float
    median_ratio: float
    median_lower: float  # user-bootstrap interval
    median_upper: float
    p95_ratio: float
    p95_lower: float
    p95_upper: float
    confidence: float


def compare_split_latency(
    candidate_ms: FloatArray,
    candidate_users: IntArray,
    primary_ms: FloatArray,
    primary_users: IntArray,
    *,
    alpha: float = 0.05,
    replicates: int = 200,
    rng: np.random.Generator | None = None,
) -> SplitLatency:
    gen = rng if rng is not None else np.random.default_rng(0)
    c_ok = np.isfinite(candidate_ms) & (candidate_ms > 0)
    p_ok = np.isfinite(primary_ms) & (primary_ms > 0)
    cand, cand_users = candidate_ms[c_ok], candidate_users[c_ok]
    prim, prim_users = primary_ms[p_ok], primary_users[p_ok]
    if cand.size < 2 or prim.size < 2:
        raise ValueError("need at least two latencies in each arm")
    mw = stats.mannwhitneyu(cand, prim, alternative="two-sided", method="asymptotic")
    qs = (0.5, 0.95)
    point = np.log(np.quantile(cand, qs)) - np.log(np.quantile(prim, qs))
    # Arms hold disjoint users, so each is resampled on its own.
    boot_c = cluster_bootstrap_quantiles(cand, cand_users, qs, replicates, gen)
    boot_p = cluster_bootstrap_quantiles(prim, prim_users, qs, replicates, gen)
    draws = np.log(boot_c) - np.log(boot_p)
    lo, hi = np.quantile(draws, [alpha / 2, 1 - alpha / 2], axis=0)
    return SplitLatency(
        n_primary=int(prim.size),
        n_candidate=int(cand.size),
        users_primary=int(np.unique(prim_users).size),
        users_candidate=int(np.unique(cand_users).size),
        mann_whitney_p=float(mw.pvalue),
        median_ratio=math.exp(point[0]),
        median_lower=math.exp(lo[0]),
        median_upper=math.exp(hi[0]),
        p95_ratio=math.exp(point[1]),
        p95_lower=math.exp(lo[1]),
        p95_upper=math.exp(hi[1]),
        confidence=1 - alpha,
    )


@dataclass(frozen=True, slots=True)
class SplitErrors:
    """Error rates in two independent arms and an exact test of their difference."""

    n_primary: int
    n_candidate: int
    primary_rate: float
    candidate_rate: float
    test: str  # "barnard" or "fisher"
    p_value: float


def compare_split_errors(candidate_failed: BoolArray, primary_failed: BoolArray) -> SplitErrors:
    n_c, n_p = int(candidate_failed.size), int(primary_failed.size)
    if n_c == 0 or n_p == 0:
        raise ValueError("need requests in both arms")
    f_c, f_p = int(np.count_nonzero(candidate_failed)), int(np.count_nonzero(primary_failed))
    table = [[f_c, n_c - f_c], [f_p, n_p - f_p]]
    if f_c + f_p == 0 or f_c + f_p == n_c + n_p:
        test, p = "fisher", 1.0
    elif n_c + n_p <= BARNARD_MAX_ROWS:
        test, p = "barnard", float(stats.barnard_exact(table).pvalue)
    else:
        test, p = "fisher", float(stats.fisher_exact(table).pvalue)
    return SplitErrors(n_p, n_c, f_p / n_p, f_c / n_c, test, p)
