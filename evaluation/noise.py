"""The noise floor: is the candidate as close to OpenAI as OpenAI is to itself?

For exchanges where the primary was called twice, compare s_cp = sim(candidate,
primary) with s_pp = sim(primary again, primary). D = s_pp - s_cp is how much
further the candidate is than OpenAI's own run-to-run variation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import stats

FloatArray = NDArray[np.float64]


def noise_gaps(s_cp: FloatArray, s_pp: FloatArray) -> FloatArray:
    """D = s_pp - s_cp for pairs where both similarities are defined."""
    if s_cp.size != s_pp.size:
        raise ValueError("both similarity arrays must be equally long")
    both = np.isfinite(s_cp) & np.isfinite(s_pp)
    gaps: FloatArray = s_pp[both] - s_cp[both]
    return gaps


@dataclass(frozen=True, slots=True)
class NoiseFloor:
    metric: str
    n: int
    mean_candidate: float  # mean sim(candidate, primary)
    mean_noise: float  # mean sim(primary, primary)
    mean_gap: float
    upper_bound: float  # one-sided upper confidence bound on the mean gap
    margin: float
    p_value: float  # paired t-test, H0: mean gap >= margin
    indistinguishable: bool
    confidence: float


def noise_floor(
    metric: str, s_cp: FloatArray, s_pp: FloatArray, *, margin: float = 0.05, alpha: float = 0.05
) -> NoiseFloor:
    """Fixed-sample paired test of mean D <= margin (one-sided)."""
    both = np.isfinite(s_cp) & np.isfinite(s_pp)
    gaps = s_pp[both] - s_cp[both]
    n = int(gaps.size)
    if n < 2:
        raise ValueError("need at least two exchanges with a noise sample")
    mean = float(gaps.mean())
    sd = float(gaps.std(ddof=1))
    if sd == 0.0:
        upper, p = mean, (0.0 if mean < margin else 1.0)
    else:
        upper = mean + float(stats.t.isf(alpha, n - 1)) * sd / math.sqrt(n)
        p = float(stats.ttest_1samp(gaps, margin, alternative="less").pvalue)
    return NoiseFloor(
        metric=metric,
        n=n,
        mean_candidate=float(s_cp[both].mean()),
        mean_noise=float(s_pp[both].mean()),
        mean_gap=mean,
        upper_bound=upper,
        margin=margin,
        p_value=p,
        indistinguishable=p <= alpha,
        confidence=1 - alpha,
    )
