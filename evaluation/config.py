"""What the verdict checks and how strictly: metric specs, margins, alpha, sample sizes."""

from __future__ import annotations

from dataclasses import dataclass

from core import ConfigError, Direction
from core.verdict import MetricName
from evaluation.metrics.registry import DEFAULT_METRICS, METRIC_CLASSES


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One decision metric. ``name`` selects how its evidence is computed.

    Two questions are asked of each metric, each with its own one-sided test:

    * promotion: is the candidate non-inferior, i.e. inside ``margin`` (the
      worst acceptable value on the metric's scale)?
    * harm: is it worse than ``harm`` (for a guardrail, the "as good as the
      primary" value plus a small threshold; None means the margin)?

    Proven harm on a guardrail rolls back; on any other metric it holds for a
    person. A metric that is not ``required`` does not block promotion while
    it has no data.
    """

    name: MetricName
    margin: float
    direction: Direction
    guardrail: bool = False
    required: bool = True
    harm: float | None = None

    @property
    def harm_limit(self) -> float:
        return self.margin if self.harm is None else self.harm


LOWER = Direction.LOWER_IS_BETTER

# Where "as good as the primary" sits on each guardrail's scale; harm is measured from here.
NEUTRAL = {
    MetricName.LATENCY_TOTAL: 1.0,
    MetricName.LATENCY_P95: 1.0,
    MetricName.ERROR_RATE: 0.0,
    MetricName.QUALITY: 0.5,
}
# Ratios: the threshold is relative.
RELATIVE_HARM = frozenset({MetricName.LATENCY_TOTAL, MetricName.LATENCY_P95})


def harm_limit(name: MetricName, threshold: float) -> float:
    """The harm limit of a guardrail for a harm ``threshold`` (0: worse at all)."""
    neutral = NEUTRAL[name]
    return neutral * (1.0 + threshold) if name in RELATIVE_HARM else neutral + threshold


DEFAULT_METRIC_SPECS: tuple[MetricSpec, ...] = (
    # typical slowdown <= 10 %
    MetricSpec(
        MetricName.LATENCY_TOTAL,
        1.10,
        LOWER,
        guardrail=True,
        harm=harm_limit(MetricName.LATENCY_TOTAL, 0),
    ),
    # tail slowdown <= 10 %
    MetricSpec(
        MetricName.LATENCY_P95,
        1.10,
        LOWER,
        guardrail=True,
        harm=harm_limit(MetricName.LATENCY_P95, 0),
    ),
    # <= 1 point more errors
    MetricSpec(
        MetricName.ERROR_RATE,
        0.01,
        LOWER,
        guardrail=True,
        harm=harm_limit(MetricName.ERROR_RATE, 0),
    ),
    # loses <= 55 % of non-tied judgments
    MetricSpec(
        MetricName.QUALITY,
        0.55,
        LOWER,
        guardrail=True,
        required=False,
        harm=harm_limit(MetricName.QUALITY, 0),
    ),
    MetricSpec(MetricName.LATENCY_TTFT, 1.10, LOWER),
    MetricSpec(MetricName.NOISE_GAP, 0.05, LOWER, required=False),
    MetricSpec(MetricName.SLO_TTFT_P50, 700.0, LOWER),  # median time to first token, ms
    MetricSpec(MetricName.SLO_TOTAL_P95, 2000.0, LOWER),  # p95 total latency, ms
)


@dataclass(frozen=True, slots=True)
class EvaluationConfig:
    alpha: float = 0.05  # false promote, and false rollback, each at most this
    metrics: tuple[MetricSpec, ...] = DEFAULT_METRIC_SPECS
    min_samples: int = 500  # units before any promotion (pairs; candidate requests in split)
    look_every: int = 25  # units between recomputations of quantile and split-mode metrics
    burn_in: int = 30  # values before an asymptotic confidence sequence is trusted
    cs_target_n: int = 1000  # where normal-mixture confidence sequences are tightest
    power: float = 0.8  # planned sample sizes give this chance of promoting an equal candidate
    bootstrap_replicates: int = 400  # for the report's fixed-sample findings
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
        # Specs built in code may carry a plain string: only MetricName's values are metrics.
        strangers = [str(n) for n in names if n not in set(MetricName)]
        if strangers:
            raise ConfigError("evaluation.metrics", f"unknown metric {strangers[0]!r}")
        unknown = [n for n in self.text_metrics if n not in METRIC_CLASSES]
        if unknown:
            raise ConfigError("evaluation.text_metrics", f"unknown metric {unknown[0]!r}")
        if self.look_every < 1:
            raise ConfigError("evaluation.look_every", "must be at least 1")
        if self.min_samples < 1:
            raise ConfigError("evaluation.min_samples", "must be at least 1")
        if not 0.5 <= self.power < 1.0:
            raise ConfigError("evaluation.power", "must be in [0.5, 1)")
        if self.noise_metric not in self.text_metrics:
            raise ConfigError("evaluation.noise_metric", "must be one of text_metrics")

    @property
    def guardrail_count(self) -> int:
        return sum(1 for m in self.metrics if m.guardrail)

    def promote_alpha(self, spec: MetricSpec) -> float:
        """Error allowed for the promotion end of this metric's interval.

        A promotion needs every metric inside its margin (an intersection-union
        test), so each metric keeps the full alpha: a candidate beyond the
        margin on any one metric is promoted with probability at most alpha.
        """
        return self.alpha

    def harm_alpha(self, spec: MetricSpec) -> float:
        """Error allowed for the harm end of this metric's interval.

        A rollback needs any one guardrail beyond its harm limit, so guardrails
        share alpha (Bonferroni): a candidate no worse than the primary on every
        guardrail is rolled back with probability at most alpha. Other metrics
        only hold, each at alpha.
        """
        return self.alpha / self.guardrail_count if spec.guardrail else self.alpha
