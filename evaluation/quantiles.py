"""Distribution-free quantile intervals and SLO tests from order statistics.

The count of observations at or below the true q-quantile is Binomial(n, q)
whatever the latency distribution, so the interval needs no bootstrap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import stats

FloatArray = NDArray[np.float64]


def order_statistic_interval(x: FloatArray, q: float, alpha: float) -> tuple[float, float]:
    """Two-sided interval for the q-quantile with coverage at least 1 - alpha.

    A side that cannot be bounded with this few observations is +/-inf.
    """
    values = x[np.isfinite(x)]
    n = values.size
    if n == 0:
        return -math.inf, math.inf
    # Lower end X_(l) misses when fewer than l values fall at or below the quantile.
    l_rank = int(stats.binom.ppf(alpha / 2, n, q))
    if stats.binom.cdf(l_rank, n, q) <= alpha / 2:
        l_rank += 1
    u_rank = int(stats.binom.ppf(1 - alpha / 2, n, q)) + 1
    ordered = np.sort(values) if n <= 1 else np.partition(values, _valid_ranks(l_rank, u_rank, n))
    lower = -math.inf if l_rank < 1 else float(ordered[l_rank - 1])
    upper = math.inf if u_rank > n else float(ordered[u_rank - 1])
    return lower, upper


def _valid_ranks(l_rank: int, u_rank: int, n: int) -> list[int]:
    return sorted({min(max(r - 1, 0), n - 1) for r in (l_rank, u_rank)})


@dataclass(frozen=True, slots=True)
class SLOTest:
    """Is the q-quantile below ``threshold``? One-sided exact binomial test."""

    n: int
    q: float
    threshold: float
    estimate: float
    lower: float
    upper: float
    share_within: float  # fraction of observations at or below the threshold
    p_value: float  # H0: the quantile is at or above the threshold
    met: bool
    confidence: float


def slo_test(x: FloatArray, q: float, threshold: float, alpha: float = 0.05) -> SLOTest:
    values = x[np.isfinite(x)]
    n = int(values.size)
    if n == 0:
        raise ValueError("no observations")
    within = int(np.count_nonzero(values < threshold))
    # Under H0, P(X < threshold) <= q, so at most Binomial(n, q) values fall below it.
    p_value = float(stats.binom.sf(within - 1, n, q))
    lower, upper = order_statistic_interval(values, q, alpha)
    return SLOTest(
        n=n,
        q=q,
        threshold=threshold,
        estimate=float(np.quantile(values, q)),
        lower=lower,
        upper=upper,
        share_within=within / n,
        p_value=p_value,
        met=p_value <= alpha,
        confidence=1 - alpha,
    )
