"""Planned sample sizes: how many units a metric needs before its promotion test is likely to pass.

The promotion test passes once the interval's end is inside the margin. For a
candidate exactly as good as the primary, the estimate sits at the neutral
value and the end lies ``spread * radius(n)`` beyond it, with the estimate's
own noise ``spread / sqrt(n)`` on top. The planned size is the smallest n
with ``distance >= spread * (radius(n) + z_power / sqrt(n))``: the n at
which a ``power`` share of such candidates have passed. The radius is the
normal-mixture one the latency metrics use. Metrics on a few points (errors,
judge losses) are planned with their own betting bound instead, applied to
the counts expected when the mean sits ``z_power`` standard errors on the
wrong side of neutral.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from evaluation.confseq import count_betting_bounds, mixture_radius

FloatArray = NDArray[np.float64]

MAX_PLANNED = 10_000_000  # beyond this a metric is reported as out of reach
_SIZES = np.unique(np.geomspace(2.0, MAX_PLANNED, 4000).astype(np.int64))


def planning_distance(
    margin: float, neutral: float, promote_end: float, worse_is_higher: bool
) -> float:
    """How far the interval's promotion end must travel, from where the truth is assumed.

    The candidate is assumed as good as the primary (``neutral``), unless its
    promotion end already shows it better; then that end is where it is assumed
    (credit only for what is shown, never for the point estimate).
    """
    if worse_is_higher:
        center = min(neutral, promote_end) if math.isfinite(promote_end) else neutral
        return margin - center
    center = max(neutral, promote_end) if math.isfinite(promote_end) else neutral
    return center - margin


@lru_cache(maxsize=64)
def _requirement(alpha: float, target_n: float, power: float) -> FloatArray:
    """radius(n) + z_power / sqrt(n) for every candidate size n."""
    t = _SIZES.astype(np.float64)
    result: FloatArray = mixture_radius(t, alpha, target_n) + stats.norm.ppf(power) / np.sqrt(t)
    result.flags.writeable = False
    return result


def planned_size(
    distance: float, spread: float, alpha: float, target_n: float, power: float | None
) -> int | None:
    """Units needed for ``power`` chance of passing; None if out of reach, unknown or
    not asked for (``power`` None, as in replays)."""
    if power is None:
        return None
    if not (math.isfinite(distance) and math.isfinite(spread)) or distance <= 0.0:
        return None
    if spread <= 0.0:
        return None
    need = spread * _requirement(alpha, target_n, power)
    enough = np.flatnonzero(need <= distance)
    return int(_SIZES[enough[0]]) if enough.size else None


_COUNT_SIZES = np.unique(np.geomspace(10.0, 200_000.0, 240).astype(np.int64))


def planned_count_size(
    shares: tuple[float, ...],
    support: tuple[float, ...],
    neutral: float,
    distance: float,
    alpha: float,
    power: float | None,
    worse_is_higher: bool,
) -> int | None:
    """Planned size for a mean of values on ``support`` (symmetric about ``neutral``).

    ``shares`` are the observed shares of each point; they are made symmetric
    about ``neutral`` (the candidate as good as the primary) before planning.
    """
    p = np.asarray(shares, dtype=np.float64)
    points = np.asarray(support, dtype=np.float64)
    if power is None or distance <= 0.0 or p.sum() <= 0.0:
        return None
    p = 0.5 * (p + p[::-1]) / p.sum()
    spread = math.sqrt(float(np.sum(p * (points - neutral) ** 2)))
    if spread == 0.0:
        return None
    lo, hi = float(points[0]), float(points[-1])
    t = _COUNT_SIZES.astype(np.float64)
    shift = stats.norm.ppf(power) * spread / np.sqrt(t) / (hi - lo)
    sign = 1.0 if worse_is_higher else -1.0
    shares_t = np.repeat(p[None, :], t.size, axis=0)
    shares_t[:, -1] += sign * shift
    shares_t[:, 0] -= sign * shift
    shares_t = np.clip(shares_t, 0.0, 1.0)
    lower, upper = count_betting_bounds(shares_t * t[:, None], support, lo, hi, alpha, alpha)
    inside = (upper <= neutral + distance) if worse_is_higher else (lower >= neutral - distance)
    enough = np.flatnonzero(inside)
    return int(_COUNT_SIZES[enough[0]]) if enough.size else None
