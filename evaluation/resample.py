"""Resampling and order-statistic helpers shared by the fixed-sample statistics.

All of them work on numpy columns and draw from an explicit ``Generator`` so
results are reproducible.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]

_BATCH_ELEMENTS = 4_000_000  # bootstrap replicates are drawn in batches of about this many values


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

    Returns the full-sample estimate and the draws already centred and scaled
    so that ``estimate + draws`` is the bootstrap distribution. For more than
    ``max_resample`` pairs an m-out-of-n bootstrap is used, its deviations
    scaled by sqrt(m/n); quantiles are a textbook case where that is consistent.
    """
    n = candidate.size
    if n != primary.size or n < 2:
        raise ValueError("need two equally long arrays with at least two pairs")
    estimate = float(np.log(np.quantile(candidate, q)) - np.log(np.quantile(primary, q)))
    m = min(n, max_resample)
    batch = max(1, _BATCH_ELEMENTS // m)
    draws = np.empty(replicates)
    for start in range(0, replicates, batch):
        stop = min(replicates, start + batch)
        idx = rng.integers(0, n, size=(stop - start, m))
        qc = np.quantile(candidate[idx], q, axis=1)
        qp = np.quantile(primary[idx], q, axis=1)
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
