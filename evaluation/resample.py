"""Resampling and order-statistic helpers shared by the fixed-sample statistics.

All of them work on numpy columns and draw from an explicit ``Generator`` so
results are reproducible.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numpy.typing import NDArray
from scipy import stats

FloatArray = NDArray[np.float64]

_BATCH_ELEMENTS = 4_000_000  # bootstrap replicates are drawn in batches of about this many values


@lru_cache(maxsize=64)
def _hd_weights(n: int, q: float) -> tuple[int, FloatArray]:
    """Harrell–Davis weights for n sorted values, trimmed to where they matter."""
    a, b = q * (n + 1), (1 - q) * (n + 1)
    weights = np.diff(stats.beta.cdf(np.arange(n + 1) / n, a, b))
    keep = np.flatnonzero(weights > 1e-15)
    start, stop = int(keep[0]), int(keep[-1]) + 1
    window: FloatArray = weights[start:stop] / weights[start:stop].sum()
    return start, window


def hd_quantile(x: FloatArray, q: float) -> float:
    """Harrell–Davis quantile: a beta-weighted average of order statistics.

    Far less jumpy than a single order statistic in the tail, which narrows
    intervals for p95 comparisons by about a fifth at a few hundred pairs.
    """
    return float(hd_quantile_rows(x[None, :], q)[0])


def hd_quantile_rows(samples: FloatArray, q: float) -> FloatArray:
    """Harrell–Davis quantile of each row of a 2-D array."""
    n = samples.shape[1]
    if n == 1:
        result: FloatArray = samples[:, 0].astype(np.float64)
        return result
    start, window = _hd_weights(n, q)
    stop = start + window.size
    # Only the order statistics under the weight window are needed.
    part = np.partition(samples, (start, stop - 1), axis=1) if stop - start < n else samples
    middle = np.sort(part[:, start:stop], axis=1)
    rows: FloatArray = middle @ window
    return rows


def paired_bootstrap_log_quantile_ratio(
    candidate: FloatArray,
    primary: FloatArray,
    q: float,
    replicates: int,
    rng: np.random.Generator,
    *,
    max_resample: int = 20_000,
) -> tuple[float, FloatArray]:
    """Bootstrap draws of log(Q_q(candidate)/Q_q(primary)), resampling whole pairs.

    Quantiles are Harrell–Davis estimates.

    Returns the full-sample estimate and the draws already centred and scaled
    so that ``estimate + draws`` is the bootstrap distribution. For more than
    ``max_resample`` pairs an m-out-of-n bootstrap is used, its deviations
    scaled by sqrt(m/n); quantiles are a textbook case where that is consistent.
    """
    n = candidate.size
    if n != primary.size or n < 2:
        raise ValueError("need two equally long arrays with at least two pairs")
    estimate = float(np.log(hd_quantile(candidate, q)) - np.log(hd_quantile(primary, q)))
    m = min(n, max_resample)
    batch = max(1, _BATCH_ELEMENTS // m)
    draws = np.empty(replicates)
    for start in range(0, replicates, batch):
        stop = min(replicates, start + batch)
        idx = rng.integers(0, n, size=(stop - start, m))
        qc = hd_quantile_rows(candidate[idx], q)
        qp = hd_quantile_rows(primary[idx], q)
        draws[start:stop] = np.log(qc) - np.log(qp)
    # Deviations from the full-sample estimate, shrunk from the m-sample to the n-sample spread.
    centred = (draws - estimate) * np.sqrt(m / n) if m < n else draws - estimate
    return estimate, centred


def kth_walsh_average(sorted_values: FloatArray, k: int) -> float:
    """The k-th smallest (1-based) of the n(n+1)/2 Walsh averages (x_i + x_j)/2, i <= j.

    Found by bisection on the value, counting averages below it with one
    vectorised search per step: O(n log n) per step, no n^2 array.
    """
    n = sorted_values.size
    total = n * (n + 1) // 2
    if not 1 <= k <= total:
        raise ValueError("k out of range")
    positions = np.arange(n)

    def count_at_most(v: float) -> int:
        ends = np.searchsorted(sorted_values, 2.0 * v - sorted_values, side="right")
        return int(np.maximum(ends - positions, 0).sum())

    lo, hi = float(sorted_values[0]), float(sorted_values[-1])
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if count_at_most(mid) >= k:
            hi = mid
        else:
            lo = mid
    return hi


def cluster_bootstrap_quantiles(
    values: FloatArray,
    clusters: NDArray[np.integer],
    qs: tuple[float, ...],
    replicates: int,
    rng: np.random.Generator,
) -> FloatArray:
    """Quantiles of ``values`` under a bootstrap that resamples whole clusters (users).

    Returns an array of shape (replicates, len(qs)). Each replicate weights every
    row by how often its cluster was drawn, so rows are sorted only once.
    """
    if values.size != clusters.size or values.size == 0:
        raise ValueError("values and clusters must be equally long and non-empty")
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    _, codes = np.unique(clusters, return_inverse=True)
    sorted_codes = codes[order]
    n_clusters = int(codes.max()) + 1
    out = np.empty((replicates, len(qs)))
    targets = np.asarray(qs)
    for b in range(replicates):
        counts = np.bincount(rng.integers(0, n_clusters, n_clusters), minlength=n_clusters)
        cumulative = np.cumsum(counts[sorted_codes])
        idx = np.searchsorted(cumulative, targets * cumulative[-1], side="left")
        out[b] = sorted_values[np.minimum(idx, sorted_values.size - 1)]
    return out
