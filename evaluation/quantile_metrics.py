"""Time-uniform evidence for quantiles: the p95 latency ratio and the SLO quantiles.

* The paired p95 ratio is an asymptotically linear estimator: log Q_c - log Q_p
  behaves like the mean of its influence values
  ``s_c (q - 1{c <= Q_c}) - s_p (q - 1{p <= Q_p})``, where s is the log-scale
  sparsity (1 / density) at the quantile, estimated from order-statistic
  spacings with the Hall–Sheather bandwidth. The indicators of both arms are
  taken on the same requests, so the pairing cancels the shared prompt-length
  component. The normal-mixture confidence sequence (Waudby-Smith et al.
  2021) is applied to that mean, so the interval keeps looking for as long as
  the stage runs: an undecided p95 is a "continue", never a final hold.
* An SLO quantile of the candidate alone gets the exact, distribution-free
  sequence of Howard & Ramdas (2022): order statistics at ranks
  ``t*q +/- b_t`` with ``b_t`` a time-uniform binomial boundary.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from evaluation.columns import VerdictInput
from evaluation.confseq import binomial_rank_boundary, mixture_radius
from evaluation.evidence import EvidenceContext, LookResult
from evaluation.planning import planned_size, planning_distance

FloatArray = NDArray[np.float64]
NAN = math.nan
QUANTILE_BURN_IN = 200  # pairs before a tail quantile's asymptotic interval is trusted


@lru_cache(maxsize=16)
def _bandwidth_scale(q: float) -> float:
    z = stats.norm.ppf(q)
    shape = 1.5 * stats.norm.pdf(z) ** 2 / (2.0 * z * z + 1.0)
    return float(stats.norm.ppf(0.975) ** (2 / 3) * shape ** (1 / 3))


def _bandwidth(n: int, q: float) -> float:
    """Hall–Sheather bandwidth for the sparsity at quantile q (at the 5 % level)."""
    return float(n ** (-1 / 3) * _bandwidth_scale(q))


def _log_quantile_and_sparsity(values: FloatArray, q: float) -> tuple[float, float]:
    n = values.size
    h = _bandwidth(n, q)
    low, high = max(q - h, 0.5 / n), min(q + h, 1.0 - 0.5 / n)
    qs = np.log(np.quantile(values, (low, q, high)))
    return float(qs[1]), float(qs[2] - qs[0]) / (high - low)


def _influence(values: FloatArray, log_quantile: float, sparsity: float, q: float) -> FloatArray:
    """Each value's influence on the log q-quantile estimate."""
    below = (values <= math.exp(log_quantile)).astype(np.float64)
    result: FloatArray = sparsity * (q - below)
    return result


def paired_quantile_ratio_cs(
    candidate: FloatArray, primary: FloatArray, q: float, ctx: EvidenceContext
) -> LookResult:
    """Candidate/primary q-quantile ratio with a time-uniform asymptotic interval."""
    n = int(candidate.size)
    log_c, s_c = _log_quantile_and_sparsity(candidate, q)
    log_p, s_p = _log_quantile_and_sparsity(primary, q)
    est = log_c - log_p
    if n < max(QUANTILE_BURN_IN, ctx.burn_in):
        return LookResult(math.exp(est), NAN, NAN, n)
    influence = _influence(candidate, log_c, s_c, q) - _influence(primary, log_p, s_p, q)
    spread = float(np.std(influence, ddof=1))
    t = np.asarray(float(n))
    lower = est - spread * float(mixture_radius(t, ctx.alpha_lower, ctx.target_n))
    upper = est + spread * float(mixture_radius(t, ctx.alpha_upper, ctx.target_n))
    end = upper if ctx.worse_is_higher else lower
    distance = planning_distance(math.log(ctx.margin), 0.0, end, ctx.worse_is_higher)
    planned = planned_size(distance, spread, ctx.promote_alpha, ctx.target_n, ctx.power)
    return LookResult(math.exp(est), math.exp(lower), math.exp(upper), n, planned)


def quantile_cs(values: FloatArray, q: float, ctx: EvidenceContext) -> LookResult:
    """The q-quantile of ``values`` with exact time-uniform bounds from order statistics.

    The upper bound is X_(k) with k = ceil(t*q + b_t): it falls below the true
    quantile only if at least k values do, which a Binomial(t, q) count does
    at some t with probability at most alpha. The lower bound mirrors it.
    A side needing a rank beyond the data is infinite.
    """
    n = int(values.size)
    if n == 0:
        return LookResult(NAN, NAN, NAN, 0)
    ordered = np.sort(values)
    up_b = binomial_rank_boundary(q, ctx.alpha_upper, n)
    low_b = binomial_rank_boundary(1.0 - q, ctx.alpha_lower, n)
    k = math.ceil(n * q + up_b)
    j = n + 1 - math.ceil(n * (1.0 - q) + low_b)
    upper = float(ordered[k - 1]) if k <= n else math.inf
    lower = float(ordered[j - 1]) if j >= 1 else -math.inf
    return LookResult(float(np.quantile(values, q)), lower, upper, n, _slo_planned(values, q, ctx))


def _slo_planned(values: FloatArray, q: float, ctx: EvidenceContext) -> int | None:
    """Planned size for "the q-quantile is inside the limit", on the share scale."""
    share = float(np.mean(values <= ctx.margin))
    distance = share - q if ctx.worse_is_higher else q - share
    spread = math.sqrt(q * (1.0 - q))
    return planned_size(distance, spread, ctx.promote_alpha, ctx.target_n, ctx.power)


def clustered_mean_cs(
    estimate: float, variance: float, units: int, rows: int, ctx: EvidenceContext, margin: float
) -> tuple[float, float, int | None]:
    """Bounds for an estimate with a (user-clustered) variance, as a mean of ``units`` would get.

    ``margin`` is on the estimate's scale, where 0 means "as good as the primary".
    The planned size is given in ``rows`` (both arms' requests), like the metric's n.
    """
    spread = math.sqrt(variance * units)
    t = np.asarray(float(units))
    lower = estimate - spread * float(mixture_radius(t, ctx.alpha_lower, ctx.target_n))
    upper = estimate + spread * float(mixture_radius(t, ctx.alpha_upper, ctx.target_n))
    end = upper if ctx.worse_is_higher else lower
    distance = planning_distance(margin, 0.0, end, ctx.worse_is_higher)
    planned = planned_size(distance, spread, ctx.promote_alpha, ctx.target_n, ctx.power)
    return lower, upper, None if planned is None else math.ceil(planned * rows / units)


def shadow_p95(data: VerdictInput, ctx: EvidenceContext, ok: NDArray[np.bool_]) -> LookResult:
    assert data.shadow is not None
    cand, prim = data.shadow.candidate.latency_ms[ok], data.shadow.primary.latency_ms[ok]
    if cand.size == 0:
        return LookResult(NAN, NAN, NAN, 0)
    return paired_quantile_ratio_cs(cand, prim, 0.95, ctx)


def cluster_mean(values: FloatArray, users: NDArray[np.int64]) -> tuple[float, float]:
    """Mean over rows and its user-clustered (sandwich) variance."""
    _, codes = np.unique(users, return_inverse=True)
    sums = np.bincount(codes, weights=values)
    sizes = np.bincount(codes).astype(np.float64)
    mean = float(sums.sum() / sizes.sum())
    clusters = sums.size
    if clusters < 2:
        return mean, math.inf
    residual = sums - mean * sizes
    var = float(np.sum(residual**2) / sizes.sum() ** 2) * clusters / (clusters - 1)
    return mean, var


def split_quantile_ratio(
    c: tuple[FloatArray, NDArray[np.int64]],
    p: tuple[FloatArray, NDArray[np.int64]],
    q: float,
    ctx: EvidenceContext,
) -> LookResult:
    """Unpaired arms, users as clusters: the influence means of both arms add variances."""
    (cv, cu), (pv, pu) = c, p
    n = int(cv.size + pv.size)
    log_c, s_c = _log_quantile_and_sparsity(cv, q)
    log_p, s_p = _log_quantile_and_sparsity(pv, q)
    est = log_c - log_p
    if min(cv.size, pv.size) < QUANTILE_BURN_IN:
        return LookResult(math.exp(est), NAN, NAN, n)
    _, var_c = cluster_mean(_influence(cv, log_c, s_c, q), cu)
    _, var_p = cluster_mean(_influence(pv, log_p, s_p, q), pu)
    units = int(cv.size)  # the candidate arm limits power, as everywhere in split mode
    lower, upper, planned = clustered_mean_cs(
        est, var_c + var_p, units, n, ctx, math.log(ctx.margin)
    )
    return LookResult(math.exp(est), math.exp(lower), math.exp(upper), n, planned)
