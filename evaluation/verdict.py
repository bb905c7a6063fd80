"""The verdict pipeline, in the style of Kayenta's judge: preprocess -> classify -> combine.

* preprocess: compute each metric's evidence (estimate, interval, n);
* classify: label each metric: pass (inside its margin: the promotion test),
  fail (beyond its harm limit: the harm test), else inconclusive; or
  no_data/error. Harm wins when both hold: worse at all, even within the
  margin, is worse;
* combine + threshold: turn the labels into promote/continue/hold/rollback,
  with the stage's minimum sample size as the promotion threshold.

Error rates (each interval end is a confidence sequence, valid at any look):
a candidate no worse than the primary on every guardrail is ever rolled back
with probability at most alpha (guardrails share it); a candidate beyond the
margin on any one required metric is ever promoted with probability at most
alpha (each metric is tested at the full alpha; promotion needs all of them).

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
    harm: float,
    direction: Direction,
) -> Codes:
    """Label codes for intervals against a margin and a harm limit.

    A NaN interval is inconclusive; proven harm outranks non-inferiority.
    """
    codes = np.full(np.shape(lower), INCONCLUSIVE, dtype=np.int8)
    if direction is Direction.LOWER_IS_BETTER:
        passed, failed = upper <= margin, lower > harm
    else:
        passed, failed = lower >= margin, upper < harm
    codes[passed] = PASS
    codes[failed] = FAIL
    codes[np.asarray(n) == 0] = NO_DATA
    return codes


def _more(planned: int | None, n: int, noun: str, power: float) -> str:
    if planned is None:
        return ""
    if planned <= n:
        return f"; planned {planned:,} {noun} already reached"
    return f"; about {planned - n:,} more {noun} for {power:.0%} power"


def _reason(
    label: MetricLabel, ev: Evidence, spec: MetricSpec, confidence: float, power: float
) -> str:
    if label is MetricLabel.NO_DATA:
        optional = "" if spec.required else " (optional: promotion does not wait for it)"
        return f"{ev.subject}: {ev.note or 'no data yet'}{optional}"
    counted = f"{ev.n:,} {ev.noun}"
    if math.isnan(ev.lower) or math.isnan(ev.upper):
        return f"{ev.subject} is {fmt(ev.estimate, ev.unit)} so far ({counted}); {ev.note}"
    limit = fmt(spec.margin, ev.unit)
    harm = fmt(spec.harm_limit, ev.unit)
    where = {
        MetricLabel.PASS: f"inside the limit of {limit}",
        MetricLabel.FAIL: f"beyond the harm limit of {harm}"
        if spec.guardrail
        else f"beyond the limit of {harm}",
        MetricLabel.INCONCLUSIVE: f"not yet shown inside the limit of {limit}"
        + _more(ev.planned_n, ev.n, ev.noun, power),
    }[label]
    interval = fmt_interval(ev.lower, ev.upper, ev.unit)
    text = (
        f"{ev.subject} is {fmt(ev.estimate, ev.unit)} "
        f"({confidence:.1%} interval {interval}, {counted}), {where}"
    )
    return f"{text} [{ev.note}]" if ev.note else text


def _number(x: float) -> float | None:
    return None if math.isnan(x) else x


def classify(ev: Evidence, spec: MetricSpec, config: EvaluationConfig) -> MetricResult:
    code = int(
        classify_codes(
            np.array([ev.lower]),
            np.array([ev.upper]),
            np.array([ev.n]),
            spec.margin,
            spec.harm_limit,
            spec.direction,
        )[0]
    )
    label = LABELS[code]
    confidence = _confidence(spec, config)
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
        confidence=confidence,
        reason=_reason(label, ev, spec, confidence, config.power),
        planned_n=ev.planned_n,
    )


def _confidence(spec: MetricSpec, config: EvaluationConfig) -> float:
    return 1.0 - config.promote_alpha(spec) - config.harm_alpha(spec)


def _error_result(spec: MetricSpec, config: EvaluationConfig, exc: Exception) -> MetricResult:
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
        confidence=_confidence(spec, config),
        reason=f"{spec.name} could not be computed: {exc}",
    )


# ---- combine and threshold --------------------------------------------------------------------


def combine_codes(
    labels: Codes,
    guardrail: NDArray[np.bool_],
    required: NDArray[np.bool_],
    n: NumberArray,
    min_samples: int,
) -> Codes:
    """Decision codes from a (metrics, times) label matrix.

    Rollback if any guardrail fails. Hold if a metric errs or a non-guardrail
    fails. Promote once every metric passes (optional ones may have no data)
    and ``n`` reached ``min_samples``. Otherwise continue: every interval keeps
    narrowing, so an undecided metric is never a reason to stop.
    """
    g = guardrail[:, None]
    rollback = np.any(g & (labels == FAIL), axis=0)
    hold = np.any((labels == ERROR) | (~g & (labels == FAIL)), axis=0)
    settled = (labels == PASS) | (~required[:, None] & (labels == NO_DATA))
    promote = np.all(settled, axis=0) & np.any(labels == PASS, axis=0) & (n >= min_samples)
    decisions = np.full(labels.shape[1], CONTINUE, dtype=np.int8)
    decisions[promote] = PROMOTE
    decisions[hold] = HOLD
    decisions[rollback] = ROLLBACK
    return decisions


def _names(results: Sequence[MetricResult]) -> str:
    return ", ".join(r.name for r in results)


def _units_needed(
    results: Sequence[MetricResult], specs: Sequence[MetricSpec], data: VerdictInput
) -> int | None:
    """Units the stage needs: the largest planned size among required or measured metrics.

    A metric counted in judgments, noise samples or both arms' requests is
    turned into units at the rate those arrived so far.
    """
    needed: list[int] = []
    for r, spec in zip(results, specs, strict=True):
        if r.planned_n is None or not (spec.required or r.label is not MetricLabel.NO_DATA):
            continue
        units_per_obs = data.units / r.n if r.n else 1.0
        needed.append(math.ceil(r.planned_n * units_per_obs))
    return max(needed) if needed else None


def _pace(data: VerdictInput, more: int) -> str:
    """How long ``more`` units take at the rate seen so far, in words."""
    columns = data.shadow if data.shadow is not None else data.split
    times = columns.time_s if columns is not None else np.empty(0)
    if times.size < 2 or data.units < 2:
        return ""
    span = float(times[-1] - times[0])
    if not math.isfinite(span) or span <= 0:
        return ""
    seconds = more * span / (data.units - 1)
    for size, name in ((86_400.0, "days"), (3_600.0, "hours"), (60.0, "minutes")):
        if seconds >= 2 * size:
            return f", ~{seconds / size:,.0f} {name} at the current traffic"
    return f", ~{max(seconds, 1.0):,.0f} seconds at the current traffic"


def _decision_reason(
    decision: Decision,
    results: Sequence[MetricResult],
    specs: Sequence[MetricSpec],
    data: VerdictInput,
    min_samples: int,
    planned: int | None,
) -> str:
    by = {label: [r for r in results if r.label is label] for label in MetricLabel}
    n, noun = data.units, data.unit_noun
    missing = [
        r
        for r, s in zip(results, specs, strict=True)
        if r.label is MetricLabel.NO_DATA and not s.required
    ]
    no_data = f"; no data yet for optional {_names(missing)}" if missing else ""
    if decision is Decision.ROLLBACK:
        failed = [r for r in by[MetricLabel.FAIL] if r.guardrail]
        return f"rollback: guardrail beyond its harm limit ({_names(failed)})"
    if decision is Decision.HOLD:
        parts = []
        if by[MetricLabel.ERROR]:
            parts.append(f"could not compute {_names(by[MetricLabel.ERROR])}")
        if by[MetricLabel.FAIL]:
            parts.append(f"{_names(by[MetricLabel.FAIL])} beyond margin (not a guardrail)")
        return "hold: " + "; ".join(parts) + "; a person should decide"
    if decision is Decision.PROMOTE:
        passed = len(by[MetricLabel.PASS])
        return (
            f"promote: all {passed} measured metrics are inside their margins after {n:,} {noun}"
            + no_data
        )
    waiting = [r for r in results if r not in missing and r.label is not MetricLabel.PASS]
    if not waiting:
        return f"continue: {n:,} of the {min_samples:,} {noun} needed before promotion" + no_data
    more = ""
    if planned is not None and planned > n:
        more = f"; about {planned - n:,} more {noun}{_pace(data, planned - n)}"
    return f"continue: waiting on {_names(waiting)}{more}{no_data}"


# ---- the pipeline -----------------------------------------------------------------------------


def context(config: EvaluationConfig, spec: MetricSpec, plan: bool = True) -> EvidenceContext:
    """What a metric's evidence needs; ``plan`` False skips planned sizes (replays)."""
    worse_is_higher = spec.direction is Direction.LOWER_IS_BETTER
    promote, harm = config.promote_alpha(spec), config.harm_alpha(spec)
    return EvidenceContext(
        alpha_lower=harm if worse_is_higher else promote,
        alpha_upper=promote if worse_is_higher else harm,
        margin=spec.margin,
        worse_is_higher=worse_is_higher,
        burn_in=config.burn_in,
        target_n=config.cs_target_n,
        look_every=config.look_every,
        power=config.power if plan else None,
    )


def preprocess(data: VerdictInput, config: EvaluationConfig) -> tuple[Evidence | Exception, ...]:
    """Evidence per configured metric; a metric that cannot be computed yields its exception."""
    out: list[Evidence | Exception] = []
    for spec in config.metrics:
        metric = definition(spec.name, data.mode)
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
    results = [
        _error_result(spec, config, ev) if isinstance(ev, Exception) else classify(ev, spec, config)
        for spec, ev in zip(config.metrics, evidence, strict=True)
    ]
    labels = np.array([[LABELS.index(r.label)] for r in results], dtype=np.int8)
    code = combine_codes(
        labels,
        np.array([s.guardrail for s in config.metrics], dtype=np.bool_),
        np.array([s.required for s in config.metrics], dtype=np.bool_),
        np.array([data.units], dtype=np.int64),
        config.min_samples,
    )[0]
    decision = DECISIONS[int(code)]
    planned = _units_needed(results, config.metrics, data)
    return Verdict(
        decision=decision,
        reason=_decision_reason(
            decision, results, config.metrics, data, config.min_samples, planned
        ),
        metrics=tuple(results),
        n=data.units,
        min_samples=config.min_samples,
        planned_n=planned,
        alpha=config.alpha,
    )
