"""Build a Report from plain columnar inputs: verdict, descriptive statistics, quality and cost.

Pure: no I/O. Latencies, errors and tokens arrive as numpy columns for every
exchange (cheap to fetch from SQL in bulk); texts arrive as a capped sample,
because per-pair text metrics are the only per-row Python work.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from core import Direction, MetricLabel, Verdict
from core.verdict import MetricName
from evaluation.columns import (
    ComparisonMode,
    Series,
    ShadowColumns,
    SplitColumns,
    VerdictInput,
)
from evaluation.config import EvaluationConfig
from evaluation.cost import (
    CostSummary,
    PriceTable,
    SelfHosted,
    api_cost,
    compare_cost,
    load_price_table,
)
from evaluation.metrics.registry import build_metrics
from evaluation.metrics.scoring import score_pairs
from evaluation.noise import NoiseFloor, noise_floor
from evaluation.quality import NonInferiority, Tally, non_inferiority, tally
from evaluation.split_stats import compare_split_errors, compare_split_latency
from evaluation.stats import compare_paired_errors, compare_paired_latency, time_per_output_token
from evaluation.verdict import evaluate_stage
from evaluation.wording import fmt, fmt_interval

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


# ---- inputs -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TextSample:
    """A capped sample of answers; ``rows`` are the exchanges' rows in the columns."""

    rows: IntArray
    candidate: tuple[str, ...]
    primary: tuple[str, ...]
    noise: tuple[str | None, ...] = ()  # the primary's second answer, where one was recorded

    def __post_init__(self) -> None:
        n = self.rows.shape[0]
        if len(self.candidate) != n or len(self.primary) != n or len(self.noise) not in (0, n):
            raise ValueError("every text column needs one entry per sampled row")


@dataclass(frozen=True, slots=True)
class CostInput:
    primary_model: str  # priced from the table
    candidate_model: str  # priced from the table unless self_hosted is given
    self_hosted: SelfHosted | None = None
    prices: PriceTable | None = None  # None: the table shipped with Understudy


@dataclass(frozen=True, slots=True)
class ReportInput:
    primary: str
    candidate: str
    mode: ComparisonMode
    shadow: ShadowColumns | None = None
    split: SplitColumns | None = None
    judgments: Series = field(default_factory=Series)  # +1/-1/0 from the candidate's side
    texts: TextSample | None = None
    cost: CostInput | None = None
    stage: str = ""


# ---- outputs ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Finding:
    """One descriptive figure with its interval and a line in plain words."""

    name: str
    estimate: float | None
    lower: float | None
    upper: float | None
    unit: str
    n: int
    text: str


@dataclass(frozen=True, slots=True)
class TextMetricSummary:
    name: str
    direction: Direction
    n: int  # sampled pairs where the metric applies
    mean: float
    lower: float  # 95 % t interval over the sample
    upper: float


@dataclass(frozen=True, slots=True)
class QualitySummary:
    tally: Tally
    # The verdict's own bound when it measures quality; else the fixed-sample exact test.
    non_inferiority: NonInferiority


@dataclass(frozen=True, slots=True)
class Report:
    title: str
    stage: str
    mode: ComparisonMode
    n: int
    verdict: Verdict
    findings: tuple[Finding, ...]
    text_metrics: tuple[TextMetricSummary, ...]
    noise: tuple[NoiseFloor, ...]
    quality: QualitySummary | None
    cost: CostSummary | None
    notes: tuple[str, ...]


# ---- building ---------------------------------------------------------------------------------


def _maybe(x: float) -> float | None:
    return None if math.isnan(x) else x


def _latency_findings(
    shadow: ShadowColumns, alpha: float, replicates: int, seed: int, *, p95_decided: bool
) -> list[Finding]:
    out: list[Finding] = []
    c, p = shadow.candidate, shadow.primary
    series = {
        "total latency": (c.latency_ms, p.latency_ms),
        "time to first token": (c.ttft_ms, p.ttft_ms),
        "time per output token": (
            time_per_output_token(c.latency_ms, c.ttft_ms, c.completion_tokens),
            time_per_output_token(p.latency_ms, p.ttft_ms, p.completion_tokens),
        ),
    }
    for offset, (what, (cand, prim)) in enumerate(series.items()):
        keep = ~c.failed & ~p.failed
        cand_ok, prim_ok = cand[keep], prim[keep]
        usable = np.isfinite(cand_ok) & np.isfinite(prim_ok) & (cand_ok > 0) & (prim_ok > 0)
        if np.count_nonzero(usable) < 2:
            continue
        rng = np.random.default_rng([seed, 100 + offset])
        r = compare_paired_latency(cand_ok, prim_ok, alpha=alpha, replicates=replicates, rng=rng)
        conf = f"{1 - alpha:.0%}"
        out.append(
            Finding(
                f"{what}: typical ratio",
                r.hl_ratio,
                r.hl_lower,
                r.hl_upper,
                "ratio",
                r.n,
                f"candidate {what} is {fmt(r.hl_ratio, 'ratio')} vs the primary on the same "
                f"requests (Hodges–Lehmann, {conf} interval "
                f"{fmt_interval(r.hl_lower, r.hl_upper, 'ratio')}); Wilcoxon p = {r.wilcoxon_p:.3g}; "
                f"medians {fmt(r.median_candidate_ms, 'ms')} vs {fmt(r.median_primary_ms, 'ms')}",
            )
        )
        if what == "total latency" and p95_decided:
            continue  # the verdict's latency_p95 metric is this figure
        out.append(
            Finding(
                f"{what}: p95 ratio",
                r.p95_ratio,
                r.p95_lower,
                r.p95_upper,
                "ratio",
                r.n,
                f"candidate p95 {what} is {fmt(r.p95_ratio, 'ratio')} vs the primary "
                f"({fmt(r.p95_candidate_ms, 'ms')} vs {fmt(r.p95_primary_ms, 'ms')}; paired "
                f"bootstrap {conf} interval {fmt_interval(r.p95_lower, r.p95_upper, 'ratio')})",
            )
        )
    return out


def _split_findings(
    split: SplitColumns, alpha: float, replicates: int, seed: int, *, p95_decided: bool
) -> list[Finding]:
    served = split.served
    ok = ~served.failed & np.isfinite(served.latency_ms) & (served.latency_ms > 0)
    c, p = ok & split.is_candidate, ok & ~split.is_candidate
    if np.count_nonzero(c) < 2 or np.count_nonzero(p) < 2:
        return []
    r = compare_split_latency(
        served.latency_ms[c],
        split.user[c],
        served.latency_ms[p],
        split.user[p],
        alpha=alpha,
        replicates=replicates,
        rng=np.random.default_rng([seed, 200]),
    )
    conf = f"{1 - alpha:.0%}"
    n = r.n_candidate + r.n_primary
    users = f"{r.users_candidate:,} + {r.users_primary:,} users"
    out = [
        Finding(
            "total latency: median ratio",
            r.median_ratio,
            r.median_lower,
            r.median_upper,
            "ratio",
            n,
            f"candidate median latency is {fmt(r.median_ratio, 'ratio')} vs the primary "
            f"(user-bootstrap {conf} interval "
            f"{fmt_interval(r.median_lower, r.median_upper, 'ratio')}, {users}); "
            f"Mann–Whitney p = {r.mann_whitney_p:.3g} (ignores clustering by user)",
        )
    ]
    if p95_decided:
        return out  # the verdict's latency_p95 metric is the p95 figure
    out.append(
        Finding(
            "total latency: p95 ratio",
            r.p95_ratio,
            r.p95_lower,
            r.p95_upper,
            "ratio",
            n,
            f"candidate p95 latency is {fmt(r.p95_ratio, 'ratio')} vs the primary "
            f"(user-bootstrap {conf} interval {fmt_interval(r.p95_lower, r.p95_upper, 'ratio')})",
        )
    )
    return out


def _error_finding(data: ReportInput) -> Finding | None:
    if data.shadow is not None:
        e = compare_paired_errors(data.shadow.candidate.failed, data.shadow.primary.failed)
        diff = e.candidate_rate - e.primary_rate
        text = (
            f"errors: candidate {fmt(e.candidate_rate, 'share')} vs primary "
            f"{fmt(e.primary_rate, 'share')} on the same requests ({e.only_candidate_failed:,} "
            f"failed only on the candidate, {e.only_primary_failed:,} only on the primary; "
            f"exact McNemar p = {e.mcnemar_p:.3g})"
        )
        return Finding("error rate difference", diff, None, None, "difference", e.n, text)
    assert data.split is not None
    split = data.split
    if split.is_candidate.all() or not split.is_candidate.any():
        return None
    s = compare_split_errors(
        split.served.failed[split.is_candidate], split.served.failed[~split.is_candidate]
    )
    diff = s.candidate_rate - s.primary_rate
    text = (
        f"errors: candidate {fmt(s.candidate_rate, 'share')} of {s.n_candidate:,} vs primary "
        f"{fmt(s.primary_rate, 'share')} of {s.n_primary:,} ({s.test} exact p = {s.p_value:.3g})"
    )
    return Finding(
        "error rate difference", diff, None, None, "difference", s.n_candidate + s.n_primary, text
    )


def _text_summaries(
    texts: TextSample, config: EvaluationConfig
) -> tuple[list[TextMetricSummary], dict[str, FloatArray], dict[str, FloatArray]]:
    """Per-metric summaries, candidate-vs-primary scores and primary-vs-primary scores."""
    cap = config.text_sample_cap
    metrics = build_metrics(config.text_metrics)
    cand, prim = texts.candidate[:cap], texts.primary[:cap]
    scores = score_pairs(metrics, cand, prim)
    noise_scores: dict[str, FloatArray] = {}
    noise = texts.noise[:cap]
    has_noise = [i for i, t in enumerate(noise) if t is not None]
    if has_noise:
        noise_texts = [t for t in noise if t is not None]
        primaries = [prim[i] for i in has_noise]
        picked = score_pairs(metrics, noise_texts, primaries)
        for name, values in picked.items():
            full = np.full(len(cand), np.nan)
            full[has_noise] = values
            noise_scores[name] = full
    summaries = []
    for metric in metrics:
        values = scores[metric.name]
        finite = values[np.isfinite(values)]
        n = int(finite.size)
        mean = float(finite.mean()) if n else math.nan
        half = (
            float(stats.t.isf(0.025, n - 1) * finite.std(ddof=1) / math.sqrt(n))
            if n > 1
            else math.nan
        )
        summaries.append(
            TextMetricSummary(metric.name, metric.direction, n, mean, mean - half, mean + half)
        )
    return summaries, scores, noise_scores


def _cost(data: ReportInput, notes: list[str]) -> CostSummary | None:
    if data.cost is None or data.shadow is None:
        if data.cost is not None:
            notes.append("cost comparison needs paired (shadow) data; skipped in split mode")
        return None
    prices = data.cost.prices or load_price_table()
    primary_price = prices.price_for(data.cost.primary_model)
    if primary_price is None:
        notes.append(f"no list price for {data.cost.primary_model!r}; cost skipped")
        return None
    p, c = data.shadow.primary, data.shadow.candidate
    primary_usd = api_cost(p.prompt_tokens, p.cached_tokens, p.completion_tokens, primary_price)
    hosted = data.cost.self_hosted
    if hosted is not None:
        candidate_usd = hosted.request_cost(c.prompt_tokens, c.completion_tokens)
        busy = hosted.busy_seconds(c.prompt_tokens, c.completion_tokens)
    else:
        candidate_price = prices.price_for(data.cost.candidate_model)
        if candidate_price is None:
            notes.append(f"no list price for {data.cost.candidate_model!r} and no GPU cost given")
            return None
        candidate_usd = api_cost(
            c.prompt_tokens, c.cached_tokens, c.completion_tokens, candidate_price
        )
        busy = None
    return compare_cost(
        primary_usd=primary_usd,
        candidate_usd=candidate_usd,
        time_s=data.shadow.time_s,
        prices_as_of=prices.as_of,
        self_hosted=hosted,
        candidate_busy_seconds=busy,
    )


def _quality_bound(result: Tally, verdict: Verdict, config: EvaluationConfig) -> NonInferiority:
    """The loss-share bound the report prints: the verdict's, so the two cannot disagree."""
    spec = next((m for m in config.metrics if m.name is MetricName.QUALITY), None)
    measured = verdict.metric(MetricName.QUALITY)
    if spec is None or measured is None or measured.upper is None or measured.estimate is None:
        margin = spec.margin if spec is not None else 0.55
        return non_inferiority(result, margin, config.alpha)
    return NonInferiority(
        result,
        spec.margin,
        measured.estimate,
        measured.upper,
        measured.label is MetricLabel.PASS,
        1.0 - config.promote_alpha(spec),
    )


def build_report(data: ReportInput, config: EvaluationConfig | None = None) -> Report:
    cfg = config or EvaluationConfig()
    notes: list[str] = []
    text_summaries: list[TextMetricSummary] = []
    noise_results: list[NoiseFloor] = []
    noise_gaps = Series()
    if data.texts is not None and data.texts.rows.size:
        text_summaries, scores, noise_scores = _text_summaries(data.texts, cfg)
        for name, s_pp in noise_scores.items():
            s_cp = scores[name]
            if np.count_nonzero(np.isfinite(s_cp) & np.isfinite(s_pp)) >= 2:
                noise_results.append(noise_floor(name, s_cp, s_pp))
        if cfg.noise_metric in noise_scores:
            gaps = noise_scores[cfg.noise_metric] - scores[cfg.noise_metric]
            rows = data.texts.rows[: gaps.size]
            keep = np.isfinite(gaps)
            order = np.argsort(rows[keep], kind="stable")
            noise_gaps = Series(np.clip(gaps[keep][order], -1.0, 1.0), rows[keep][order])
        if data.texts.rows.size > cfg.text_sample_cap:
            notes.append(f"text metrics use the first {cfg.text_sample_cap:,} sampled pairs")

    verdict_input = VerdictInput(data.mode, data.shadow, data.split, data.judgments, noise_gaps)
    verdict = evaluate_stage(verdict_input, cfg)

    findings: list[Finding] = []
    replicates = cfg.bootstrap_replicates
    # A quantity the verdict measures is shown once, as the verdict's metric (its own
    # window and estimator), never as a second finding that could contradict it. The SLO
    # quantiles are only ever the verdict's metrics.
    p95_decided = verdict.metric(MetricName.LATENCY_P95) is not None
    if data.shadow is not None:
        findings += _latency_findings(
            data.shadow, cfg.alpha, replicates, cfg.seed, p95_decided=p95_decided
        )
    elif data.split is not None:
        findings += _split_findings(
            data.split, cfg.alpha, replicates, cfg.seed, p95_decided=p95_decided
        )
    if verdict_input.n:
        error = _error_finding(data)
        if error is not None:
            findings.append(error)

    quality = None
    if len(data.judgments):
        result = tally(data.judgments.values.astype(np.int64))
        quality = QualitySummary(result, _quality_bound(result, verdict, cfg))

    return Report(
        title=f"{data.candidate} vs {data.primary}",
        stage=data.stage,
        mode=data.mode,
        n=verdict_input.n,
        verdict=verdict,
        findings=tuple(findings),
        text_metrics=tuple(text_summaries),
        noise=tuple(noise_results),
        quality=quality,
        cost=_cost(data, notes),
        notes=tuple(notes),
    )
