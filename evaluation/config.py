"""What the verdict checks and how strictly: metric specs, margins, alpha, sample sizes."""

from __future__ import annotations

from dataclasses import dataclass

from core import ConfigError, Direction
from evaluation.decision_metrics import KNOWN_METRICS
from evaluation.metrics.registry import DEFAULT_METRICS, METRIC_CLASSES


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One decision metric. ``name`` selects how its evidence is computed.

    ``margin`` is the worst acceptable value on the metric's scale. A guardrail
    that fails rolls back; any other failure holds for a person. A metric that
    is not ``required`` does not block promotion while it has no data.
    """

    name: str
    margin: float
    direction: Direction
    guardrail: bool = False
    required: bool = True


LOWER = Direction.LOWER_IS_BETTER

DEFAULT_METRIC_SPECS: tuple[MetricSpec, ...] = (
    MetricSpec("latency_total", 1.10, LOWER, guardrail=True),  # typical slowdown <= 10 %
    MetricSpec("latency_p95", 1.10, LOWER, guardrail=True),  # tail slowdown <= 10 %
    MetricSpec("error_rate", 0.01, LOWER, guardrail=True),  # <= 1 point more errors
    MetricSpec("quality", 0.55, LOWER, guardrail=True, required=False),  # loses <= 55 %
    MetricSpec("latency_ttft", 1.10, LOWER),
    MetricSpec("noise_gap", 0.05, LOWER, required=False),
    MetricSpec("slo_ttft_p50", 700.0, LOWER),  # median time to first token, ms
    MetricSpec("slo_total_p95", 2000.0, LOWER),  # p95 total latency, ms
)


@dataclass(frozen=True, slots=True)
class EvaluationConfig:
    alpha: float = 0.05  # false promote, and false rollback, each at most this
    metrics: tuple[MetricSpec, ...] = DEFAULT_METRIC_SPECS
    min_samples: int = 500  # units before any promotion (pairs; candidate requests in split)
    max_samples: int = 700  # units at the last planned look for quantile metrics
    looks: int = 5  # planned looks for quantile metrics, at most 5
    burn_in: int = 30  # values before an asymptotic confidence sequence is trusted
    cs_target_n: int = 500  # where mean-type confidence sequences are tightest
    bootstrap_replicates: int = 400
    seed: int = 0  # makes bootstrap-based results reproducible
    text_metrics: tuple[str, ...] = DEFAULT_METRICS
    noise_metric: str = "chrf"  # the similarity the noise floor is judged on
    text_sample_cap: int = 2000

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 0.5:
            raise ConfigError("evaluation.alpha", "must be in (0, 0.5)")
        names = [m.name for m in self.metrics]
        if len(set(names)) != len(names):
            raise ConfigError("evaluation.metrics", "a metric is listed twice")
        if not self.metrics:
            raise ConfigError("evaluation.metrics", "at least one metric is needed")
        unknown = [n for n in names if n not in KNOWN_METRICS]
        if unknown:
            raise ConfigError("evaluation.metrics", f"unknown metric {unknown[0]!r}")
        unknown = [n for n in self.text_metrics if n not in METRIC_CLASSES]
        if unknown:
            raise ConfigError("evaluation.text_metrics", f"unknown metric {unknown[0]!r}")
        if not 1 <= self.looks <= 5:
            raise ConfigError("evaluation.looks", "must be between 1 and 5")
        if self.max_samples < self.looks or self.min_samples < 1:
            raise ConfigError("evaluation.max_samples", "must be at least the number of looks")
        if self.noise_metric not in self.text_metrics:
            raise ConfigError("evaluation.noise_metric", "must be one of text_metrics")

    @property
    def guardrail_count(self) -> int:
        return sum(1 for m in self.metrics if m.guardrail)

    def metric_alpha(self, spec: MetricSpec) -> float:
        """Error allowed for each end of this metric's interval.

        A rollback needs one guardrail's interval wholly beyond its margin, so
        guardrails share alpha (Bonferroni). A promotion needs every metric
        inside its margin (an intersection-union test), so each keeps alpha.
        """
        return self.alpha / self.guardrail_count if spec.guardrail else self.alpha
