"""How each decision metric's evidence is computed, per mode.

Adding a decision metric: write its series or look function here, add it to
``DEFINITIONS`` and list a ``MetricSpec`` for it in the configuration.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from core.verdict import MetricName
from evaluation.columns import ArmColumns, ComparisonMode, Series, SplitColumns, VerdictInput
from evaluation.evidence import EvidenceContext, LookMetric, LookResult, MeanMetric, log_or_nan
from evaluation.quality import LOSS, TIE
from evaluation.quantile_metrics import (
    cluster_mean,
    clustered_mean_cs,
    quantile_cs,
    shadow_p95,
    split_quantile_ratio,
)
from evaluation.stats import paired_valid, time_per_output_token

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

NAN = math.nan
ERROR_POINTS = (-1.0, 0.0, 1.0)  # candidate minus primary failure, per pair
LOSS_POINTS = (0.0, 1.0)

Definition = MeanMetric | LookMetric


def _exp(x: FloatArray) -> FloatArray:
    result: FloatArray = np.exp(x)
    return result


def _shadow(data: VerdictInput) -> tuple[ArmColumns, ArmColumns]:
    assert data.shadow is not None
    return data.shadow.candidate, data.shadow.primary


def _split(data: VerdictInput) -> SplitColumns:
    assert data.split is not None
    return data.split


# ---- shadow mode: rows are pairs -------------------------------------------------------------


def _paired_log_ratio(field: str) -> Callable[[VerdictInput], Series]:
    def series(data: VerdictInput) -> Series:
        cand, prim = _shadow(data)
        c, p = getattr(cand, field), getattr(prim, field)
        ok = paired_valid(c, p) & ~cand.failed & ~prim.failed
        rows = np.flatnonzero(ok)
        return Series(np.log(c[rows]) - np.log(p[rows]), rows.astype(np.int64))

    return series


def _paired_tpot(data: VerdictInput) -> Series:
    cand, prim = _shadow(data)
    c = time_per_output_token(cand.latency_ms, cand.ttft_ms, cand.completion_tokens)
    p = time_per_output_token(prim.latency_ms, prim.ttft_ms, prim.completion_tokens)
    ok = paired_valid(c, p) & ~cand.failed & ~prim.failed
    rows = np.flatnonzero(ok)
    return Series(np.log(c[rows]) - np.log(p[rows]), rows.astype(np.int64))


def _paired_errors(data: VerdictInput) -> Series:
    cand, prim = _shadow(data)
    diff = cand.failed.astype(np.float64) - prim.failed.astype(np.float64)
    return Series(diff, np.arange(diff.size, dtype=np.int64))


def _loss_indicator(data: VerdictInput) -> Series:
    decided = data.judgments.values != TIE
    losses = (data.judgments.values[decided] == LOSS).astype(np.float64)
    return Series(losses, data.judgments.rows[decided])


def _noise_gaps(data: VerdictInput) -> Series:
    return data.noise_gaps


def _paired_latency_rows(data: VerdictInput) -> BoolArray:
    cand, prim = _shadow(data)
    ok: BoolArray = paired_valid(cand.latency_ms, prim.latency_ms) & ~cand.failed & ~prim.failed
    return ok


def _p95_running(data: VerdictInput) -> float:
    cand, prim = _shadow(data)
    ok = _paired_latency_rows(data)
    return float(np.quantile(cand.latency_ms[ok], 0.95) / np.quantile(prim.latency_ms[ok], 0.95))


def _p95_at_look(data: VerdictInput, ctx: EvidenceContext) -> LookResult:
    return shadow_p95(data, ctx, _paired_latency_rows(data))


def _candidate_values(data: VerdictInput, field: str) -> FloatArray:
    arm = data.shadow.candidate if data.shadow is not None else _split(data).candidate
    values: FloatArray = getattr(arm, field)
    keep = np.isfinite(values) & ~arm.failed
    result: FloatArray = values[keep]
    return result


def _candidate_rows(field: str) -> Callable[[VerdictInput], BoolArray]:
    def usable(data: VerdictInput) -> BoolArray:
        if data.shadow is not None:
            arm, mine = data.shadow.candidate, np.ones(data.n, dtype=np.bool_)
        else:
            split = _split(data)
            arm, mine = split.served, split.is_candidate
        ok: BoolArray = mine & np.isfinite(getattr(arm, field)) & ~arm.failed
        return ok

    return usable


def _slo(field: str, q: float) -> LookMetric:
    def running(data: VerdictInput) -> float:
        return float(np.quantile(_candidate_values(data, field), q))

    def at_look(data: VerdictInput, ctx: EvidenceContext) -> LookResult:
        return quantile_cs(_candidate_values(data, field), q, ctx)

    what = "time to first token" if field == "ttft_ms" else "total latency"
    return LookMetric(
        subject=f"candidate p{round(q * 100)} {what}",
        unit="ms",
        noun="requests",
        at_look=at_look,
        running=running,
        usable=_candidate_rows(field),
    )


# ---- split mode: rows are single exchanges, users are the unit ------------------------------


def _split_arms(
    data: VerdictInput, field: str
) -> tuple[tuple[FloatArray, NDArray[np.int64]], tuple[FloatArray, NDArray[np.int64]]]:
    split = _split(data)
    values = getattr(split.served, field)
    ok = np.isfinite(values) & (values > 0) & ~split.served.failed
    c, p = ok & split.is_candidate, ok & ~split.is_candidate
    return (values[c], split.user[c]), (values[p], split.user[p])


def _split_log_ratio(field: str) -> LookMetric:
    def running(data: VerdictInput) -> float:
        (c, _), (p, _) = _split_arms(data, field)
        if c.size == 0 or p.size == 0:
            return NAN
        return math.exp(float(np.mean(np.log(c)) - np.mean(np.log(p))))

    def usable(data: VerdictInput) -> BoolArray:
        # Per row, so that "usable so far" never depends on later rows.
        split = _split(data)
        values = getattr(split.served, field)
        ok: BoolArray = np.isfinite(values) & (values > 0) & ~split.served.failed
        return ok

    def at_look(data: VerdictInput, ctx: EvidenceContext) -> LookResult:
        (c, cu), (p, pu) = _split_arms(data, field)
        n = int(c.size + p.size)
        if c.size < 2 or p.size < 2:
            return LookResult(NAN, NAN, NAN, n)
        mc, vc = cluster_mean(np.log(c), cu)
        mp, vp = cluster_mean(np.log(p), pu)
        d = mc - mp
        lo, hi, planned = clustered_mean_cs(d, vc + vp, int(c.size), n, ctx, log_or_nan(ctx.margin))
        return LookResult(math.exp(d), math.exp(lo), math.exp(hi), n, planned)

    what = "time to first token" if field == "ttft_ms" else "total latency"
    return LookMetric(
        subject=f"candidate/primary {what} (geometric mean)",
        unit="ratio",
        noun="requests",
        at_look=at_look,
        running=running,
        usable=usable,
    )


def _split_p95() -> LookMetric:
    def running(data: VerdictInput) -> float:
        (c, _), (p, _) = _split_arms(data, "latency_ms")
        if c.size == 0 or p.size == 0:
            return NAN
        return float(np.quantile(c, 0.95) / np.quantile(p, 0.95))

    def at_look(data: VerdictInput, ctx: EvidenceContext) -> LookResult:
        c, p = _split_arms(data, "latency_ms")
        if c[0].size == 0 or p[0].size == 0:
            return LookResult(NAN, NAN, NAN, int(c[0].size + p[0].size))
        return split_quantile_ratio(c, p, 0.95, ctx)

    return LookMetric(
        subject="candidate/primary p95 total latency",
        unit="ratio",
        noun="requests",
        at_look=at_look,
        running=running,
        usable=_split_log_ratio("latency_ms").usable,
    )


def _split_errors() -> LookMetric:
    def arms(
        data: VerdictInput,
    ) -> tuple[FloatArray, NDArray[np.int64], FloatArray, NDArray[np.int64]]:
        split = _split(data)
        failed = split.served.failed.astype(np.float64)
        c, p = split.is_candidate, ~split.is_candidate
        return failed[c], split.user[c], failed[p], split.user[p]

    def running(data: VerdictInput) -> float:
        fc, _, fp, _ = arms(data)
        return float(fc.mean() - fp.mean()) if fc.size and fp.size else NAN

    def usable(data: VerdictInput) -> BoolArray:
        return np.ones(data.n, dtype=np.bool_)

    def at_look(data: VerdictInput, ctx: EvidenceContext) -> LookResult:
        fc, cu, fp, pu = arms(data)
        n = int(fc.size + fp.size)
        if fc.size < 2 or fp.size < 2:
            return LookResult(NAN, NAN, NAN, n)
        mc, vc = cluster_mean(fc, cu)
        mp, vp = cluster_mean(fp, pu)
        d = mc - mp
        lo, hi, planned = clustered_mean_cs(d, vc + vp, int(fc.size), n, ctx, ctx.margin)
        return LookResult(d, lo, hi, n, planned)

    return LookMetric(
        subject="candidate minus primary error rate",
        unit="difference",
        noun="requests",
        at_look=at_look,
        running=running,
        usable=usable,
    )


# ---- the registry ----------------------------------------------------------------------------


def _shadow_p95() -> LookMetric:
    return LookMetric(
        subject="candidate/primary p95 total latency",
        unit="ratio",
        noun="pairs",
        at_look=_p95_at_look,
        running=_p95_running,
        usable=_paired_latency_rows,
    )


def _ratio_sequence(subject: str, series: Callable[[VerdictInput], Series]) -> MeanMetric:
    return MeanMetric(subject, "ratio", "pairs", series, transform=_exp, inverse=log_or_nan)


def _quality() -> MeanMetric:
    return MeanMetric(
        "candidate's share of losses among non-tied judgments",
        "share",
        "judgments",
        _loss_indicator,
        neutral=0.5,
        support=LOSS_POINTS,
    )


def _noise() -> MeanMetric:
    return MeanMetric(
        "similarity gap to OpenAI's own run-to-run noise",
        "difference",
        "noise samples",
        _noise_gaps,
        bounds=(-1.0, 1.0),
    )


def _shadow_definition(name: MetricName) -> Definition | None:
    match name:
        case MetricName.LATENCY_TOTAL:
            return _ratio_sequence(
                "candidate/primary total latency", _paired_log_ratio("latency_ms")
            )
        case MetricName.LATENCY_TTFT:
            return _ratio_sequence(
                "candidate/primary time to first token", _paired_log_ratio("ttft_ms")
            )
        case MetricName.LATENCY_TPOT:
            return _ratio_sequence("candidate/primary time per output token", _paired_tpot)
        case MetricName.LATENCY_P95:
            return _shadow_p95()
        case MetricName.ERROR_RATE:
            return MeanMetric(
                "candidate minus primary error rate",
                "difference",
                "pairs",
                _paired_errors,
                support=ERROR_POINTS,
            )
    return None


def _split_definition(name: MetricName) -> Definition | None:
    match name:
        case MetricName.LATENCY_TOTAL:
            return _split_log_ratio("latency_ms")
        case MetricName.LATENCY_TTFT:
            return _split_log_ratio("ttft_ms")
        case MetricName.LATENCY_P95:
            return _split_p95()
        case MetricName.ERROR_RATE:
            return _split_errors()
    return None


def definition(name: MetricName, mode: ComparisonMode) -> Definition | None:
    """How metric ``name`` is measured in ``mode``; None if it is unknown."""
    match name:
        case MetricName.QUALITY:
            return _quality()
        case MetricName.NOISE_GAP:
            return _noise()
        case MetricName.SLO_TTFT_P50:
            return _slo("ttft_ms", 0.5)
        case MetricName.SLO_TOTAL_P95:
            return _slo("latency_ms", 0.95)
    if mode is ComparisonMode.SHADOW:
        return _shadow_definition(name)
    return _split_definition(name)
