"""What the exchange detail page draws from its ``ExchangeDetail`` values (one per candidate
compared with the primary): the arms, each pair's word diff and every per-pair metric,
and timing bars.

The metrics are the evaluation's own (``build_metrics`` and ``score_pairs``) on the
texts the report compares: the candidate's answer against the primary's, and, when
the primary was called twice, its second answer against its first (the noise the
candidate is measured against).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from core import Direction, Observation, Role
from dashboards.worddiff import WordDiff, word_diff
from evaluation.metrics.registry import build_metrics
from evaluation.metrics.scoring import score_pairs
from storage.ui_browser import ExchangeDetail

ROLE_WORDS = {
    Role.SERVED: "served the client",
    Role.SHADOW: "shadow",
    Role.REVERSE_SHADOW: "reverse shadow",
    Role.NOISE: "primary again (noise)",
    Role.FAILED_OVER: "failed over",
}

# The timing chart, in SVG user units: per arm a line of text, then its bars below it.
BAR_WIDTH = 640.0
ROW_HEIGHT = 46.0


@dataclass(frozen=True, slots=True)
class ArmView:
    observation: Observation
    part: str | None  # "primary" or "candidate" when the arm is one side of the pair

    @property
    def title(self) -> str:
        side = f"{self.part}: " if self.part else ""
        return f"{side}{self.observation.upstream} ({ROLE_WORDS[self.observation.role]})"


@dataclass(frozen=True, slots=True)
class TimingRow:
    title: str
    y: float
    total_width: float  # 0 when the arm has no total
    ttft_width: float
    total_ms: float | None
    ttft_ms: float | None


@dataclass(frozen=True, slots=True)
class TimingChart:
    rows: tuple[TimingRow, ...]
    height: float
    scale_ms: float  # the time a full bar stands for


@dataclass(frozen=True, slots=True)
class MetricRow:
    name: str
    higher_is_better: bool
    vs_primary: float  # NaN: the metric does not apply to this pair
    primary_rerun: float | None  # None: no second answer of the primary to compare


@dataclass(frozen=True, slots=True)
class PairView:
    """One candidate's answer against the primary's, with what the judge and people said."""

    primary: ArmView
    candidate: ArmView
    diff: WordDiff | None  # None: an arm has no text (failed, tool calls only, embeddings)
    metrics: tuple[MetricRow, ...]
    detail: ExchangeDetail


def shadow_candidates(detail: ExchangeDetail) -> list[str]:
    """Candidates mirrored beside the one the detail's pair is about: each has its own pair."""
    found = {o.upstream for o in detail.exchange.observations if o.role is Role.SHADOW}
    return sorted(found - {detail.candidate})


def arm_views(details: Sequence[ExchangeDetail]) -> tuple[ArmView, ...]:
    """The exchange's arms, each marked with its side in any of the pairs."""
    parts: dict[int | None, str] = {}
    for d in details:
        parts |= {d.primary_position: "primary", d.candidate_position: "candidate"}
    observations = details[0].exchange.observations
    return tuple(ArmView(o, parts.get(i)) for i, o in enumerate(observations))


def timing_chart(arms: Sequence[ArmView]) -> TimingChart:
    times = [t for a in arms for t in (a.observation.latency_ms, a.observation.ttft_ms) if t]
    scale = max(times, default=0.0)

    def width(ms: float | None) -> float:
        return round(BAR_WIDTH * ms / scale, 1) if ms and scale else 0.0

    rows = tuple(
        TimingRow(
            a.title,
            i * ROW_HEIGHT,
            width(a.observation.latency_ms),
            width(a.observation.ttft_ms),
            a.observation.latency_ms,
            a.observation.ttft_ms,
        )
        for i, a in enumerate(arms)
    )
    return TimingChart(rows, max(len(rows), 1) * ROW_HEIGHT, scale)


def pair_metrics(
    names: Sequence[str], candidate: str, primary: str, rerun: str | None
) -> tuple[MetricRow, ...]:
    metrics = build_metrics(names)
    vs_primary = score_pairs(metrics, [candidate], [primary])
    vs_rerun = score_pairs(metrics, [rerun], [primary]) if rerun is not None else None
    return tuple(
        MetricRow(
            m.name,
            m.direction is Direction.HIGHER_IS_BETTER,
            float(vs_primary[m.name][0]),
            float(vs_rerun[m.name][0]) if vs_rerun is not None else None,
        )
        for m in metrics
    )


def pair_view(
    arms: Sequence[ArmView], detail: ExchangeDetail, metric_names: Sequence[str]
) -> PairView | None:
    """The detail's candidate-vs-primary pair, compared; None when an arm of it is missing."""
    if detail.primary_position is None or detail.candidate_position is None:
        return None
    primary, candidate = arms[detail.primary_position], arms[detail.candidate_position]
    old, new = primary.observation.text, candidate.observation.text
    if old is None or new is None:
        return PairView(primary, candidate, None, (), detail)
    rerun = next((a.observation.text for a in arms if a.observation.role is Role.NOISE), None)
    metrics = pair_metrics(metric_names, new, old, rerun)
    return PairView(primary, candidate, word_diff(old, new), metrics, detail)


def metric_value(value: float) -> str:
    return "does not apply" if math.isnan(value) else f"{value:.3f}"


def milliseconds(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f} ms"
