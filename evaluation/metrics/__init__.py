"""Per-pair text metrics: each module holds one metric; ``registry`` maps names to classes."""

from evaluation.metrics.base import PairMetric
from evaluation.metrics.registry import METRIC_CLASSES, build_metrics

__all__ = ["METRIC_CLASSES", "PairMetric", "build_metrics"]
