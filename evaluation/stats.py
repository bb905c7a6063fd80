"""Fixed-sample statistics for shadow mode, where every request is paired.

These describe the data as it stands (Wilcoxon, Hodges–Lehmann, bootstrap,
McNemar). Rollout decisions use the monitoring-safe versions in
``evaluation.evidence``; these are what a report shows next to them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from evaluation.resample import (
    hd_quantile,
    kth_walsh_average,
    paired_bootstrap_log_quantile_ratio,
)

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

HL_MAX_PAIRS = 20_000  # Hodges–Lehmann and its interval use a seeded sample of at most this many


@dataclass(frozen=True, slots=True)
class PairedLatency:
    """Candidate vs primary latency on the same requests, as ratios (1.10 = 10 % slower)."""

    n: int
    median_primary_ms: float
    median_candidate_ms: float
    wilcoxon_statistic: float
    wilcoxon_p: float  # two-sided, on log(candidate/primary)
    hl_ratio: float  # exp of the Hodges–Lehmann estimate of the log ratio
    hl_lower: float
    hl_upper: float
    hl_n: int  # pairs the Hodges–Lehmann figures were computed on
    p95_primary_ms: float  # Harrell–Davis estimates
    p95_candidate_ms: float
    p95_ratio: float
    p95_lower: float  # paired bootstrap interval; sees tail-only changes Wilcoxon misses
    p95_upper: float
    confidence: float


def paired_valid(candidate: FloatArray, primary: FloatArray) -> BoolArray:
    """Pairs where both arms have a positive, finite duration."""
    ok: BoolArray = np.isfinite(candidate) & np.isfinite(primary) & (candidate > 0) & (primary > 0)
    return ok


def hodges_lehmann(
    d: FloatArray, alpha: float, rng: np.random.Generator, *, max_n: int = HL_MAX_PAIRS
) -> tuple[float, float, float, int]:
    """Median of Walsh averages and its Wilcoxon-inverted interval: (estimate, lo, hi, n used)."""
    values = rng.choice(d, size=max_n, replace=False) if d.size > max_n else d
    x = np.sort(values)
    n = x.size
    total = n * (n + 1) // 2
    estimate = 0.5 * (kth_walsh_average(x, (total + 1) // 2) + kth_walsh_average(x, total // 2 + 1))
    z = float(stats.norm.isf(alpha / 2))
    # Normal approximation to the signed-rank distribution; fine beyond a few dozen pairs.
    k = math.floor(total / 2 - z * math.sqrt(n * (n + 1) * (2 * n + 1) / 24.0))
    if k < 1:
        return estimate, -math.inf, math.inf, n
    return estimate, kth_walsh_average(x, k), kth_walsh_average(x, total - k + 1), n


def compare_paired_latency(
    candidate_ms: FloatArray,
    primary_ms: FloatArray,
    *,
    alpha: float = 0.05,
    replicates: int = 1000,
    rng: np.random.Generator | None = None,
) -> PairedLatency:
    """Wilcoxon signed-rank + Hodges–Lehmann on log ratios, and a paired bootstrap p95 ratio."""
    gen = rng if rng is not None else np.random.default_rng(0)
    ok = paired_valid(candidate_ms, primary_ms)
    cand, prim = candidate_ms[ok], primary_ms[ok]
    if cand.size < 2:
        raise ValueError("need at least two pairs with both latencies")
    d = np.log(cand) - np.log(prim)
    if np.all(d == 0):
        w_stat, w_p = 0.0, 1.0
    else:
        result = stats.wilcoxon(d, zero_method="wilcox", method="auto")
        w_stat, w_p = float(result.statistic), float(result.pvalue)
    hl, hl_lo, hl_hi, hl_n = hodges_lehmann(d, alpha, gen)
    estimate, centred = paired_bootstrap_log_quantile_ratio(cand, prim, 0.95, replicates, gen)
    lo_dev, hi_dev = np.quantile(centred, [alpha / 2, 1 - alpha / 2])
    return PairedLatency(
        n=int(cand.size),
        median_primary_ms=float(np.median(prim)),
        median_candidate_ms=float(np.median(cand)),
        wilcoxon_statistic=w_stat,
        wilcoxon_p=w_p,
        hl_ratio=math.exp(hl),
        hl_lower=math.exp(hl_lo),
        hl_upper=math.exp(hl_hi),
        hl_n=hl_n,
        p95_primary_ms=hd_quantile(prim, 0.95),
        p95_candidate_ms=hd_quantile(cand, 0.95),
        p95_ratio=math.exp(estimate),
        p95_lower=math.exp(estimate + lo_dev),
        p95_upper=math.exp(estimate + hi_dev),
        confidence=1 - alpha,
    )


# Below this share of the total spent after the first byte, an answer came in one piece.
STREAMED_FRACTION = 0.02


def time_per_output_token(
    latency_ms: FloatArray, ttft_ms: FloatArray, completion_tokens: FloatArray
) -> FloatArray:
    """Milliseconds per generated token after the first; NaN where it is undefined.

    A non-streamed answer arrives in one piece (its first byte is the whole answer),
    so it has no generation time after the first token: such rows are left out.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        generating = latency_ms - ttft_ms
        tpot = generating / (completion_tokens - 1.0)
    streamed = generating > STREAMED_FRACTION * latency_ms
    usable = np.isfinite(tpot) & (completion_tokens >= 2) & (tpot > 0) & streamed
    result: FloatArray = np.where(usable, tpot, np.nan)
    return result


@dataclass(frozen=True, slots=True)
class PairedErrors:
    """Error rates on the same requests and McNemar's exact test on the discordant pairs."""

    n: int
    primary_rate: float
    candidate_rate: float
    only_candidate_failed: int
    only_primary_failed: int
    mcnemar_p: float


def compare_paired_errors(candidate_failed: BoolArray, primary_failed: BoolArray) -> PairedErrors:
    if candidate_failed.size != primary_failed.size or candidate_failed.size == 0:
        raise ValueError("need two equally long, non-empty arrays")
    only_c = int(np.count_nonzero(candidate_failed & ~primary_failed))
    only_p = int(np.count_nonzero(primary_failed & ~candidate_failed))
    discordant = only_c + only_p
    p = 1.0 if discordant == 0 else float(stats.binomtest(only_c, discordant, 0.5).pvalue)
    return PairedErrors(
        n=int(candidate_failed.size),
        primary_rate=float(np.mean(primary_failed)),
        candidate_rate=float(np.mean(candidate_failed)),
        only_candidate_failed=only_c,
        only_primary_failed=only_p,
        mcnemar_p=p,
    )
