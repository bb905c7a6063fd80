"""Group-sequential boundaries (O'Brien–Fleming) for designs with a few planned looks.

The verdict itself uses confidence sequences, which stay valid at any look and
never force a last one; these boundaries are the fixed-look reference they are
compared with. They come from integrating the joint law of the look statistics
(Armitage–McPherson–Rowe recursion on a grid), so the chance of ever crossing
over all looks is exactly alpha under the null.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray
from scipy import optimize, stats

MAX_LOOKS = 5
_GRID_POINTS = 301  # odd, for Simpson's rule; bounds agree with a 1201-point grid to 1e-8


def _simpson_weights(points: int, step: float) -> NDArray[np.float64]:
    weights = np.ones(points)
    weights[1:-1:2] = 4.0
    weights[2:-1:2] = 2.0
    return weights * step / 3.0


def _normal_pdf(x: NDArray[np.float64], sd: float) -> NDArray[np.float64]:
    result: NDArray[np.float64] = np.exp(-0.5 * (x / sd) ** 2) / (sd * math.sqrt(2.0 * math.pi))
    return result


def continuation_probability(
    upper: tuple[float, ...], lower: tuple[float, ...], times: tuple[float, ...]
) -> float:
    """P(lower_k < Z_k < upper_k at every look) for Z_k = B(t_k)/sqrt(t_k), B standard Brownian.

    Bounds are on the z scale; use +/-inf for an open side.
    """
    if not (len(upper) == len(lower) == len(times)) or not times:
        raise ValueError("upper, lower and times must be non-empty and of equal length")
    density: NDArray[np.float64] | None = None
    grid = weights = np.empty(0)
    previous_t = 0.0
    for up, low, t in zip(upper, lower, times, strict=True):
        if t <= previous_t:
            raise ValueError("look times must increase")
        sd_total = math.sqrt(t)
        # Brownian scale: S = Z*sqrt(t); an open side is cut at 9 sd where the mass is nil.
        hi = min(up * sd_total, 9.0 * sd_total)
        lo = max(low * sd_total, -9.0 * sd_total)
        if hi <= lo:
            return 0.0
        new_grid = np.linspace(lo, hi, _GRID_POINTS)
        new_weights = _simpson_weights(_GRID_POINTS, (hi - lo) / (_GRID_POINTS - 1))
        step_sd = math.sqrt(t - previous_t)
        if density is None:
            new_density = _normal_pdf(new_grid, step_sd)
        else:
            kernel = _normal_pdf(new_grid[:, None] - grid[None, :], step_sd)
            new_density = kernel @ (weights * density)
        density, grid, weights, previous_t = new_density, new_grid, new_weights, t
    assert density is not None
    return float(np.dot(weights, density))


def _normalised(times: tuple[float, ...]) -> tuple[float, ...]:
    last = times[-1]
    return tuple(t / last for t in times)


@lru_cache(maxsize=256)
def obrien_fleming_bounds(
    alpha: float, times: tuple[float, ...], two_sided: bool = True
) -> tuple[float, ...]:
    """O'Brien–Fleming z bounds c/sqrt(t_k) at information fractions ``times``.

    ``c`` is solved so that the overall type I error over all looks is ``alpha``
    (split evenly between both sides when ``two_sided``). For equally spaced
    looks this is the classic c*sqrt(K/k).
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError("alpha must be in (0, 1)")
    if not 1 <= len(times) <= MAX_LOOKS:
        raise ValueError(f"between 1 and {MAX_LOOKS} looks are supported")
    fractions = _normalised(times)
    roots = tuple(math.sqrt(t) for t in fractions)

    def excess(c: float) -> float:
        upper = tuple(c / r for r in roots)
        lower = tuple(-u for u in upper) if two_sided else tuple(-math.inf for _ in upper)
        return (1.0 - continuation_probability(upper, lower, fractions)) - alpha

    one_look = stats.norm.isf(alpha / 2 if two_sided else alpha)
    c = optimize.brentq(excess, one_look * 0.8, one_look * 3.0, xtol=1e-10)
    return tuple(c / r for r in roots)
