"""Confidence sequences: intervals that stay valid however often they are looked at.

Each end is a one-sided bound: the lower bound ever exceeds the true mean with
probability at most ``alpha``, and likewise the upper bound falls below it. So
"interval above the margin" is a level-alpha test however often it is checked,
and the interval covers the mean throughout with probability at least 1 - 2*alpha.

Two kinds, both computed for every prefix in one vectorised pass (the value a
verdict uses is the last element):

* ``betting_cs`` — the predictable plug-in empirical-Bernstein confidence
  sequence of Waudby-Smith & Ramdas (2023), for values in a known range
  [lo, hi]. Exactly valid at every sample size; used for error indicators,
  judge outcomes and similarity gaps.
* ``normal_mixture_cs`` — the asymptotic confidence sequence of Waudby-Smith,
  Arnold, Wu, Howard & Ramdas (2021): the Gaussian-mixture boundary of
  Howard et al. with a plug-in standard deviation. Valid as n grows, for
  unbounded values such as log latency ratios; callers give it a burn-in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class CSPath:
    """Estimate and interval after each prefix of the data (last axis)."""

    estimate: FloatArray
    lower: FloatArray
    upper: FloatArray

    def last(self) -> tuple[float, float, float]:
        return float(self.estimate[..., -1]), float(self.lower[..., -1]), float(self.upper[..., -1])


def _validate(x: FloatArray, alpha: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError("alpha must be in (0, 1)")
    if x.shape[-1] == 0:
        raise ValueError("need at least one observation")


def betting_cs(
    x: NDArray[np.floating] | NDArray[np.integer] | NDArray[np.bool_],
    alpha: float,
    *,
    lo: float = 0.0,
    hi: float = 1.0,
    truncation: float = 0.5,
) -> CSPath:
    """PrPl-EB confidence sequence for the mean of values in [lo, hi], alpha per side.

    The running intersection is taken, so the interval never widens.
    """
    data = np.asarray(x, dtype=np.float64)
    _validate(data, alpha)
    if hi <= lo:
        raise ValueError("hi must exceed lo")
    if np.any(data < lo) or np.any(data > hi):
        raise ValueError(f"values must lie in [{lo}, {hi}]")
    y = (data - lo) / (hi - lo)
    n = y.shape[-1]
    t = np.arange(1, n + 1, dtype=np.float64)
    log_term = math.log(1.0 / alpha)

    mu_hat = (0.5 + np.cumsum(y, axis=-1)) / (t + 1.0)
    sigma2_hat = (0.25 + np.cumsum((y - mu_hat) ** 2, axis=-1)) / (t + 1.0)
    # Bets may only use what was known before each observation arrived.
    mu_prev = np.concatenate([np.full((*y.shape[:-1], 1), 0.5), mu_hat[..., :-1]], axis=-1)
    sigma2_prev = np.concatenate([np.full((*y.shape[:-1], 1), 0.25), sigma2_hat[..., :-1]], axis=-1)
    lam = np.minimum(np.sqrt(2.0 * log_term / (sigma2_prev * t * np.log1p(t))), truncation)
    psi = (-np.log1p(-lam) - lam) / 4.0
    v = 4.0 * (y - mu_prev) ** 2

    lam_sum = np.cumsum(lam, axis=-1)
    centre = np.cumsum(lam * y, axis=-1) / lam_sum
    radius = (log_term + np.cumsum(v * psi, axis=-1)) / lam_sum
    lower = np.maximum.accumulate(np.clip(centre - radius, 0.0, 1.0), axis=-1)
    upper = np.minimum.accumulate(np.clip(centre + radius, 0.0, 1.0), axis=-1)
    # An empty intersection can only happen on a miscovered path; keep it a point.
    upper = np.maximum(upper, lower)
    mean = np.cumsum(y, axis=-1) / t
    scale = hi - lo
    return CSPath(lo + scale * mean, lo + scale * lower, lo + scale * upper)


def mixture_rho(alpha: float, target_n: float) -> float:
    """The mixture width that makes the boundary tightest near ``target_n``."""
    log_a = -2.0 * math.log(alpha)
    return math.sqrt((log_a + math.log(log_a + 1.0)) / target_n)


def _mixture_radius(t: FloatArray, rho2: float, alpha: float) -> FloatArray:
    """One-sided normal-mixture boundary for unit variance (Howard et al. 2021, eq. 14)."""
    spread = t * rho2 + 1.0
    radius: FloatArray = np.sqrt(
        2.0 * spread / (t**2 * rho2) * np.log(np.sqrt(spread) / (2.0 * alpha) + 1.0)
    )
    return radius


def normal_mixture_cs(x: NDArray[np.floating], alpha: float, *, target_n: float = 500.0) -> CSPath:
    """Asymptotic confidence sequence for the mean, alpha per side, tightest near ``target_n``."""
    data = np.asarray(x, dtype=np.float64)
    _validate(data, alpha)
    n = data.shape[-1]
    t = np.arange(1, n + 1, dtype=np.float64)
    # Shift by the first value: sums of squares stay accurate for long series.
    shifted = data - data[..., :1]
    s1 = np.cumsum(shifted, axis=-1)
    s2 = np.cumsum(shifted**2, axis=-1)
    mean_shifted = s1 / t
    var = np.maximum(s2 / t - mean_shifted**2, 0.0) * (t / np.maximum(t - 1.0, 1.0))
    rho2 = mixture_rho(alpha, target_n) ** 2
    width = np.sqrt(var) * _mixture_radius(t, rho2, alpha)
    mean = mean_shifted + data[..., :1]
    return CSPath(mean, mean - width, mean + width)


def normal_mixture_last(
    x: NDArray[np.floating], alpha: float, *, target_n: float = 500.0
) -> tuple[float, float, float]:
    """The current (estimate, lower, upper) of ``normal_mixture_cs`` without building the path."""
    data = np.asarray(x, dtype=np.float64)
    _validate(data, alpha)
    n = float(data.size)
    mean = float(np.mean(data))
    sd = float(np.std(data, ddof=1)) if data.size > 1 else 0.0
    rho2 = mixture_rho(alpha, target_n) ** 2
    width = sd * float(_mixture_radius(np.asarray(n), rho2, alpha))
    return mean, mean - width, mean + width
