"""Confidence sequences: intervals that stay valid however often they are looked at.

Each end is a one-sided bound with its own level: the lower bound ever exceeds
the true value with probability at most its alpha, and likewise the upper
bound falls below it. So "upper end inside the margin" is a level-alpha test
however often, and at whatever times, it is checked; the two ends may carry
different alphas because they answer different questions (promotion, harm).

* ``count_betting_bounds`` — for values on a few known points in [lo, hi]
  (error differences in {-1, 0, 1}, judge losses in {0, 1}): the betting
  confidence sequence of Waudby-Smith & Ramdas (2023), "Estimating means of
  bounded random variables by betting" (JRSS-B), with an equal-weight mixture
  of constant bets spread over the full range (their "dKelly" hedge). Exact at
  every sample size; computed from counts, so any prefix costs the same.
* ``betting_cs`` — their predictable plug-in empirical-Bernstein sequence, for
  bounded continuous values (similarity gaps).
* ``normal_mixture_cs`` / ``mixture_radius`` — the asymptotic confidence
  sequence of Waudby-Smith, Arnold, Wu, Howard & Ramdas (2021): the
  Gaussian-mixture boundary of Howard, Ramdas, McAuliffe & Sekhon (2021,
  "Time-uniform, nonparametric, nonasymptotic confidence sequences", eq. 14)
  with a plug-in standard deviation, tightest near a planned sample size. Valid
  as n grows, for unbounded values (log latency ratios) and asymptotically
  linear estimators (quantile ratios); callers give it a burn-in.
* ``binomial_rank_boundary`` — an exact mixture boundary for a Binomial(t, q)
  count, the basis of the distribution-free quantile sequence of Howard &
  Ramdas (2022), "Sequential estimation of quantiles with applications to
  A/B-testing and best-arm identification" (Bernoulli).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

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


def mixture_radius(t: FloatArray, alpha: float, target_n: float) -> FloatArray:
    """One-sided normal-mixture radius for the mean of ``t`` unit-variance values."""
    rho2 = mixture_rho(alpha, target_n) ** 2
    spread = t * rho2 + 1.0
    radius: FloatArray = np.sqrt(
        2.0 * spread / (t**2 * rho2) * np.log(np.sqrt(spread) / (2.0 * alpha) + 1.0)
    )
    return radius


def normal_mixture_cs(
    x: NDArray[np.floating],
    alpha: float,
    *,
    target_n: float = 1000.0,
    alpha_upper: float | None = None,
) -> CSPath:
    """Asymptotic confidence sequence for the mean; ``alpha`` for the lower end and
    ``alpha_upper`` (default the same) for the upper end, tightest near ``target_n``."""
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
    sd = np.sqrt(var)
    mean = mean_shifted + data[..., :1]
    up = alpha if alpha_upper is None else alpha_upper
    return CSPath(
        mean,
        mean - sd * mixture_radius(t, alpha, target_n),
        mean + sd * mixture_radius(t, up, target_n),
    )


def normal_mixture_last(
    x: NDArray[np.floating],
    alpha: float,
    *,
    target_n: float = 1000.0,
    alpha_upper: float | None = None,
) -> tuple[float, float, float]:
    """The current (estimate, lower, upper) of ``normal_mixture_cs`` without building the path."""
    data = np.asarray(x, dtype=np.float64)
    _validate(data, alpha)
    n = np.asarray(float(data.size))
    mean = float(np.mean(data))
    sd = float(np.std(data, ddof=1)) if data.size > 1 else 0.0
    up = alpha if alpha_upper is None else alpha_upper
    low_width = sd * float(mixture_radius(n, alpha, target_n))
    high_width = sd * float(mixture_radius(n, up, target_n))
    return mean, mean - low_width, mean + high_width


def _logsumexp(a: FloatArray, axis: int) -> FloatArray:
    top = np.max(a, axis=axis, keepdims=True)
    result: FloatArray = np.squeeze(top, axis=axis) + np.log(np.sum(np.exp(a - top), axis=axis))
    return result


# ---- betting on a few known points -----------------------------------------------------------

# Constant bets, as a share of the largest bet that keeps wealth non-negative:
# from nearly all-in down to 1/20 of it, equal weights.
BET_SHARES: FloatArray = 0.9 * 0.56 ** np.arange(6, dtype=np.float64)
_BISECTIONS = (
    22  # the bound is found to (hi - lo) * 2**-22 (about 1e-7 of the range), on the safe side
)


def _log_wealth(counts: FloatArray, ratio: FloatArray, losing: FloatArray) -> FloatArray:
    """log of the equal-weight mixture of wealths.

    ``ratio`` is (..., points) for the points whose payoff depends on m;
    ``losing`` is the wealth from the far end of the range, whose payoff is -1.
    """
    wealth = losing.copy()
    for v in range(ratio.shape[-1]):
        wealth += counts[..., v, None] * np.log1p(BET_SHARES * ratio[..., v, None])
    mixed: FloatArray = _logsumexp(wealth, axis=-1) - math.log(BET_SHARES.size)
    return mixed


def count_betting_bounds(
    counts: NDArray[np.floating] | NDArray[np.integer],
    support: tuple[float, ...],
    lo: float,
    hi: float,
    alpha_lower: float,
    alpha_upper: float,
) -> tuple[FloatArray, FloatArray]:
    """Lower and upper confidence-sequence bounds for the mean of values on ``support``.

    ``counts[..., v]`` is how many of the values so far equal ``support[v]``
    (any leading shape: one row per time, per run). The lower bound is the
    largest m at which a gambler betting on "mean above m" has multiplied
    its wealth by 1/alpha_lower (so m is rejected); likewise the upper bound.
    Bisection keeps the rejected end, so the bounds are exact, never optimistic.
    """
    if hi <= lo or not all(lo <= s <= hi for s in support):
        raise ValueError("support must lie in [lo, hi]")
    for a in (alpha_lower, alpha_upper):
        if not 0.0 < a < 1.0:
            raise ValueError("alpha must be in (0, 1)")
    c = np.asarray(counts, dtype=np.float64)
    points = np.asarray(support, dtype=np.float64)
    shape = c.shape[:-1]
    # Constant bets never reject the sample mean (log(1 + y) <= y), so it brackets both ends.
    total = np.maximum(c.sum(axis=-1), 1.0)
    mean = np.clip((c @ points) / total, lo, hi)
    bounds = []
    for alpha, side in ((alpha_lower, 1.0), (alpha_upper, -1.0)):
        far = lo if side > 0 else hi
        moving = points != far
        losing = c[..., ~moving].sum(axis=-1)[..., None] * np.log1p(-BET_SHARES)
        counts_moving, points_moving = c[..., moving], points[moving]
        rejected = np.full(shape, far)
        accepted = mean.copy()
        threshold = math.log(1.0 / alpha)
        for _ in range(_BISECTIONS):
            m = 0.5 * (rejected + accepted)
            # A mean at the very end of the range makes m that end: 0/0, never a rejection.
            with np.errstate(divide="ignore", invalid="ignore"):
                if side > 0:  # bets that the mean is above m pay (x - lo)/(m - lo) - 1 per unit
                    ratio = (points_moving - lo) / (m[..., None] - lo) - 1.0
                else:
                    ratio = (hi - points_moving) / (hi - m[..., None]) - 1.0
                hit = _log_wealth(counts_moving, ratio, losing) >= threshold
            rejected = np.where(hit, m, rejected)
            accepted = np.where(hit, accepted, m)
        bounds.append(rejected)
    return bounds[0], bounds[1]


# ---- quantiles -------------------------------------------------------------------------------

_RANK_BETS: FloatArray = 2.0 ** np.arange(-5.0, 2.5, 0.5)  # tilts of the binomial law


def binomial_rank_boundary(q: float, alpha: float, size: int) -> float:
    """b_t with P(Binomial count S_t - t*q >= b_t for some t) <= alpha, at t = ``size``.

    The mixture over tilts of exp(lam*S_t - t*log(1 - q + q*e^lam)) is a
    martingale with mean one, so Ville's inequality bounds the crossing.
    Pass 1 - q for the other side.
    """
    if size < 1:
        raise ValueError("size must be at least 1")
    table = _rank_table(q, alpha, 1 << max(size - 1, 1).bit_length())
    return float(table[size - 1])


@lru_cache(maxsize=64)
def _rank_table(q: float, alpha: float, upto: int) -> FloatArray:
    """``binomial_rank_boundary`` for every t in 1..upto, in one vectorised bisection."""
    t = np.arange(1, upto + 1, dtype=np.float64)
    lam = _RANK_BETS[None, :]
    cumulant = t[:, None] * np.log1p(q * np.expm1(lam))
    low, high = np.zeros_like(t), t * (1.0 - q) + 1.0
    threshold = math.log(1.0 / alpha) + math.log(_RANK_BETS.size)
    for _ in range(_BISECTIONS):
        b = 0.5 * (low + high)
        wealth = _logsumexp(lam * (t[:, None] * q + b[:, None]) - cumulant, axis=1)
        hit = wealth >= threshold
        high = np.where(hit, b, high)
        low = np.where(hit, low, b)
    high.flags.writeable = False
    return high
