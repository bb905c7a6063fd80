"""``UNDERSTUDY_EVALUATION__*``: how strict the verdict is, mapped onto evaluation's config."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from core.verdict import MetricName

if TYPE_CHECKING:
    from evaluation.config import EvaluationConfig


class EvaluationSettings(BaseModel):
    model_config = {"extra": "forbid"}

    alpha: float = Field(default=0.05, gt=0, lt=0.5)  # false promote, and false rollback
    min_samples: int = Field(default=500, ge=1)  # pairs before any promotion
    # Rollback once a guardrail is shown worse than the primary by more than this:
    # relative for latency ratios (0.02: 2 % slower), in points for the error rate
    # and the judge's loss share. 0 rolls back on any proven harm.
    harm_threshold: float = Field(default=0.0, ge=0, lt=0.5)
    latency_margin: float = Field(default=1.10, gt=1)  # worst acceptable latency ratio
    error_margin: float = Field(default=0.01, gt=0, lt=1)  # worst acceptable extra error rate
    quality_margin: float = Field(default=0.55, gt=0, lt=1)  # worst acceptable loss share
    noise_margin: float = Field(default=0.05, gt=0, lt=1)  # similarity gap beyond OpenAI's own
    slo_ttft_p50_ms: float = Field(default=700.0, gt=0)
    slo_total_p95_ms: float = Field(default=2000.0, gt=0)
    text_metrics: list[str] | None = None  # None: every built-in text metric
    text_sample_cap: int = Field(default=2000, ge=10)

    def config(self) -> EvaluationConfig:
        # Imported here: evaluation pulls in scipy, which every other command can do without.
        from evaluation.config import DEFAULT_METRIC_SPECS, NEUTRAL, EvaluationConfig, harm_limit
        from evaluation.metrics.registry import DEFAULT_METRICS

        margins = {
            MetricName.LATENCY_TOTAL: self.latency_margin,
            MetricName.LATENCY_P95: self.latency_margin,
            MetricName.LATENCY_TTFT: self.latency_margin,
            MetricName.ERROR_RATE: self.error_margin,
            MetricName.QUALITY: self.quality_margin,
            MetricName.NOISE_GAP: self.noise_margin,
            MetricName.SLO_TTFT_P50: self.slo_ttft_p50_ms,
            MetricName.SLO_TOTAL_P95: self.slo_total_p95_ms,
        }
        specs = tuple(
            replace(
                s,
                margin=margins.get(s.name, s.margin),
                harm=harm_limit(s.name, self.harm_threshold) if s.name in NEUTRAL else s.harm,
            )
            for s in DEFAULT_METRIC_SPECS
        )
        return EvaluationConfig(
            alpha=self.alpha,
            metrics=specs,
            min_samples=self.min_samples,
            text_metrics=tuple(self.text_metrics or DEFAULT_METRICS),
            text_sample_cap=self.text_sample_cap,
        )
