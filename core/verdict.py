"""The outcome of judging a candidate: one labelled result per metric and a rollout decision.

These are plain values so the rollout layer can act on a verdict without knowing
how it was computed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Direction(StrEnum):
    """Which way a metric improves."""

    HIGHER_IS_BETTER = "higher_is_better"
    LOWER_IS_BETTER = "lower_is_better"


class MetricName(StrEnum):
    """The closed set of decision metrics a verdict can measure; settings and stage gates
    name them by value."""

    LATENCY_TOTAL = "latency_total"  # typical candidate/primary total-latency ratio
    LATENCY_TTFT = "latency_ttft"  # typical time-to-first-token ratio
    LATENCY_TPOT = "latency_tpot"  # typical time-per-output-token ratio
    LATENCY_P95 = "latency_p95"  # p95 total-latency ratio
    ERROR_RATE = "error_rate"  # candidate minus primary error rate
    QUALITY = "quality"  # the judge's loss share among non-tied judgments
    NOISE_GAP = "noise_gap"  # similarity gap beyond the primary's own run-to-run noise
    SLO_TTFT_P50 = "slo_ttft_p50"  # the candidate's median time to first token, ms
    SLO_TOTAL_P95 = "slo_total_p95"  # the candidate's p95 total latency, ms


class MetricLabel(StrEnum):
    """The closed set of outcomes for one metric. Inconclusive is not fail."""

    PASS = "pass"  # the whole interval is on the good side of the margin
    FAIL = "fail"  # the whole interval is on the bad side of the margin
    INCONCLUSIVE = "inconclusive"  # the interval still straddles the margin
    NO_DATA = "no_data"  # nothing to measure yet
    ERROR = "error"  # the metric could not be computed


class Decision(StrEnum):
    """What the rollout should do next."""

    PROMOTE = "promote"  # move to the next stage
    CONTINUE = "continue"  # keep collecting at this stage
    HOLD = "hold"  # stay here and ask a person
    ROLLBACK = "rollback"  # a guardrail broke: go back to the primary


@dataclass(frozen=True, slots=True)
class MetricResult:
    """One metric's evidence and label.

    ``margin`` is the worst acceptable value on the metric's own scale (for a
    latency ratio, 1.10 means "at most 10 % slower"). ``lower``/``upper`` is the
    interval at ``confidence``, valid under continuous monitoring.
    """

    name: MetricName
    label: MetricLabel
    estimate: float | None
    lower: float | None
    upper: float | None
    n: int
    margin: float
    direction: Direction
    guardrail: bool
    unit: str  # how to read the numbers: "ratio", "share", "difference", "ms", "score"
    confidence: float
    reason: str  # one line in plain words
    planned_n: int | None = None  # observations (in the metric's own count) for 80 % power


@dataclass(frozen=True, slots=True)
class Verdict:
    """The decision for the current stage and the per-metric results behind it."""

    decision: Decision
    reason: str
    metrics: tuple[MetricResult, ...]
    n: int  # units in this stage: pairs in shadow mode, candidate-served exchanges in split
    min_samples: int  # no promotion before this many units
    planned_n: int | None  # units the stage needs for 80 % power at promotion, if known
    alpha: float

    def metric(self, name: MetricName) -> MetricResult | None:
        return next((m for m in self.metrics if m.name == name), None)

    @property
    def failed_guardrails(self) -> tuple[MetricResult, ...]:
        return tuple(m for m in self.metrics if m.guardrail and m.label is MetricLabel.FAIL)
