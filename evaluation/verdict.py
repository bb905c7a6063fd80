"""The verdict pipeline, in the style of Kayenta's judge: preprocess -> classify -> combine.

* preprocess: compute each metric's evidence (estimate, interval, n);
* classify: label each metric against its margin (pass/fail/inconclusive/no_data/error);
* combine + threshold: turn the labels into promote/continue/hold/rollback,
  with the stage's minimum sample size as the promotion threshold.

``classify_codes`` and ``combine_codes`` work on whole arrays so simulations
can replay a verdict after every row with the very same rules.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from core import Decision, Direction, MetricLabel, MetricResult, Verdict
from evaluation.columns import VerdictInput
from evaluation.config import EvaluationConfig, MetricSpec
from evaluation.decision_metrics import definition
from evaluation.evidence import Evidence, EvidenceContext
from evaluation.groupseq import LookSchedule
from evaluation.wording import fmt, fmt_interval

LABELS: tuple[MetricLabel, ...] = (
    MetricLabel.PASS,
    MetricLabel.FAIL,
    MetricLabel.INCONCLUSIVE,
    MetricLabel.NO_DATA,
    MetricLabel.ERROR,
)
PASS, FAIL, INCONCLUSIVE, NO_DATA, ERROR = range(5)
DECISIONS: tuple[Decision, ...] = (
    Decision.PROMOTE,
    Decision.CONTINUE,
    Decision.HOLD,
    Decision.ROLLBACK,
)
PROMOTE, CONTINUE, HOLD, ROLLBACK = range(4)

Codes = NDArray[np.int8]
NumberArray = NDArray[np.float64] | NDArray[np.int64]


# ---- classify ---------------------------------------------------------------------------------


def classify_codes(
    lower: NDArray[np.float64],
    upper: NDArray[np.float64],
    n: NumberArray,
    margin: float,
    direction: Direction,
) -> Codes:
    """Label codes for intervals against a margin. A NaN interval is inconclusive."""
    codes = np.full(np.shape(lower), INCONCLUSIVE, dtype=np.int8)
    if direction is Direction.LOWER_IS_BETTER:
        passed, failed = upper <= margin, lower > margin
    else:
        passed, failed = lower >= margin, upper < margin
    codes[passed] = PASS
    codes[failed] = FAIL
    codes[np.asarray(n) == 0] = NO_DATA
    return codes


def _reason(label: MetricLabel, ev: Evidence, spec: MetricSpec, confidence: float) -> str:
    if label is MetricLabel.NO_DATA:
        return f"{ev.subject}: {ev.note or 'no data yet'}"
    counted = f"{ev.n:,} {ev.noun}"
    if math.isnan(ev.lower) or math.isnan(ev.upper):
        return f"{ev.subject} is {fmt(ev.estimate, ev.unit)} so far ({counted}); {ev.note}"
    limit = fmt(spec.margin, ev.unit)
    where = {
        MetricLabel.PASS: f"inside the limit of {limit}",
        MetricLabel.FAIL: f"beyond the limit of {limit}",
        MetricLabel.INCONCLUSIVE: f"straddles the limit of {limit}; more data needed",
    }[label]
    interval = fmt_interval(ev.lower, ev.upper, ev.unit)
    text = (
        f"{ev.subject} is {fmt(ev.estimate, ev.unit)} "
        f"({confidence:.1%} interval {interval}, {counted}), {where}"
    )
    return f"{text} [{ev.note}]" if ev.note else text


def _number(x: float) -> float | None:
    return None if math.isnan(x) else x


def classify(ev: Evidence, spec: MetricSpec, alpha: float) -> MetricResult:
    code = int(
        classify_codes(
            np.array([ev.lower]),
            np.array([ev.upper]),
            np.array([ev.n]),
            spec.margin,
            spec.direction,
        )[0]
    )
    label = LABELS[code]
    return MetricResult(
        name=spec.name,
        label=label,
        estimate=_number(ev.estimate),
        lower=_number(ev.lower),
        upper=_number(ev.upper),
        n=ev.n,
        margin=spec.margin,
        direction=spec.direction,
        guardrail=spec.guardrail,
        unit=ev.unit,
        confidence=1 - 2 * alpha,
        reason=_reason(label, ev, spec, 1 - 2 * alpha),
    )


def _error_result(spec: MetricSpec, alpha: float, exc: Exception) -> MetricResult:
    return MetricResult(
        name=spec.name,
        label=MetricLabel.ERROR,
        estimate=None,
        lower=None,
        upper=None,
        n=0,
        margin=spec.margin,
        direction=spec.direction,
        guardrail=spec.guardrail,
        unit="",
        confidence=1 - 2 * alpha,
        reason=f"{spec.name} could not be computed: {exc}",
    )


# ---- combine and threshold --------------------------------------------------------------------


def combine_codes(
    labels: Codes,
    final: NDArray[np.bool_],
    guardrail: NDArray[np.bool_],
    required: NDArray[np.bool_],
    n: NumberArray,
    min_samples: int,
) -> Codes:
    """Decision codes from a (metrics, times) label matrix.

    Rollback if any guardrail fails. Hold if a metric errs, a non-guardrail
    fails, or a metric is still inconclusive at its final look. Promote once
    every metric passes (optional ones may have no data) and ``n`` reached
    ``min_samples``. Otherwise continue.
    """
    g = guardrail[:, None]
    rollback = np.any(g & (labels == FAIL), axis=0)
    hold = np.any(
        (labels == ERROR) | (~g & (labels == FAIL)) | (final & (labels == INCONCLUSIVE)), axis=0
    )
    settled = (labels == PASS) | (~required[:, None] & (labels == NO_DATA))
    promote = np.all(settled, axis=0) & np.any(labels == PASS, axis=0) & (n >= min_samples)
    decisions = np.full(labels.shape[1], CONTINUE, dtype=np.int8)
    decisions[promote] = PROMOTE
    decisions[hold] = HOLD
    decisions[rollback] = ROLLBACK
    return decisions


def _names(results: Sequence[MetricResult]) -> str:
    return ", ".join(r.name for r in results)


def _decision_reason(
    decision: Decision,
    results: Sequence[MetricResult],
    finals: Sequence[bool],
    specs: Sequence[MetricSpec],
    n: int,
    min_samples: int,
    noun: str,
) -> str:
    by = {label: [r for r in results if r.label is label] for label in MetricLabel}
    if decision is Decision.ROLLBACK:
        failed = [r for r in by[MetricLabel.FAIL] if r.guardrail]
        return f"rollback: guardrail beyond its margin ({_names(failed)})"
    if decision is Decision.HOLD:
        parts = []
        if by[MetricLabel.ERROR]:
            parts.append(f"could not compute {_names(by[MetricLabel.ERROR])}")
        if by[MetricLabel.FAIL]:
            parts.append(f"{_names(by[MetricLabel.FAIL])} beyond margin (not a guardrail)")
        stuck = [
            r
            for r, f in zip(results, finals, strict=True)
            if f and r.label is MetricLabel.INCONCLUSIVE
        ]
        if stuck:
            parts.append(f"{_names(stuck)} still inconclusive at the final look")
        return "hold: " + "; ".join(parts) + "; a person should decide"
    if decision is Decision.PROMOTE:
        passed = len(by[MetricLabel.PASS])
        return f"promote: all {passed} measured metrics are inside their margins after {n:,} {noun}"
    waiting = [r for r in results if r.label in (MetricLabel.INCONCLUSIVE, MetricLabel.NO_DATA)]
    if n < min_samples and not [r for r in waiting if r.label is MetricLabel.INCONCLUSIVE]:
        return f"continue: {n:,} of the {min_samples:,} {noun} needed before promotion"
    return f"continue: waiting on {_names(waiting)}"


# ---- the pipeline -----------------------------------------------------------------------------


def context(config: EvaluationConfig, spec: MetricSpec) -> EvidenceContext:
    return EvidenceContext(
        alpha=config.metric_alpha(spec),
        schedule=LookSchedule(config.max_samples, config.looks),
        burn_in=config.burn_in,
        cs_target_n=config.cs_target_n,
        replicates=config.bootstrap_replicates,
        seed=config.seed,
    )


def preprocess(data: VerdictInput, config: EvaluationConfig) -> tuple[Evidence | Exception, ...]:
    """Evidence per configured metric; a metric that cannot be computed yields its exception."""
    out: list[Evidence | Exception] = []
    for spec in config.metrics:
        metric = definition(spec.name, data.mode, config.bootstrap_replicates)
        if metric is None:
            out.append(ValueError(f"{spec.name} is not available in {data.mode} mode"))
            continue
        try:
            out.append(metric.evidence(data, context(config, spec)))
        except (ValueError, ArithmeticError, np.linalg.LinAlgError) as exc:
            # Bad data for one metric becomes an ERROR label (and a hold), not a crash.
            out.append(exc)
    return tuple(out)


def evaluate_stage(data: VerdictInput, config: EvaluationConfig) -> Verdict:
    """The verdict for a stage's data so far. Pure: same data and config, same verdict."""
    evidence = preprocess(data, config)
    results: list[MetricResult] = []
    finals: list[bool] = []
    for spec, ev in zip(config.metrics, evidence, strict=True):
        alpha = config.metric_alpha(spec)
        if isinstance(ev, Exception):
            results.append(_error_result(spec, alpha, ev))
            finals.append(False)
        else:
            results.append(classify(ev, spec, alpha))
            finals.append(ev.final)
    labels = np.array([[LABELS.index(r.label)] for r in results], dtype=np.int8)
    code = combine_codes(
        labels,
        np.array([[f] for f in finals], dtype=np.bool_),
        np.array([s.guardrail for s in config.metrics], dtype=np.bool_),
        np.array([s.required for s in config.metrics], dtype=np.bool_),
        np.array([data.units], dtype=np.int64),
        config.min_samples,
    )[0]
    decision = DECISIONS[int(code)]
    return Verdict(
        decision=decision,
        reason=_decision_reason(
            decision,
            results,
            finals,
            config.metrics,
            data.units,
            config.min_samples,
            data.unit_noun,
        ),
        metrics=tuple(results),
        n=data.units,
        min_samples=config.min_samples,
        max_samples=LookSchedule(config.max_samples, config.looks).sizes[-1],
        alpha=config.alpha,
    )
