"""Metric names -> classes. Adding a metric: one module plus one line here.

Classes are named by import path and loaded on first use, so an unused
metric's dependencies (sacrebleu for chrF and BLEU) are never imported.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from importlib import import_module
from types import MappingProxyType

from core import ConfigError
from evaluation.metrics.base import PairMetric

METRIC_CLASSES: Mapping[str, str] = MappingProxyType(
    {
        "exact_match": "evaluation.metrics.exact_match:ExactMatch",
        "token_f1": "evaluation.metrics.token_f1:TokenF1",
        "rouge_l": "evaluation.metrics.rouge_l:RougeL",
        "chrf": "evaluation.metrics.chrf:ChrF",
        "bleu": "evaluation.metrics.bleu:Bleu",
        "length_ratio": "evaluation.metrics.length_ratio:LengthRatio",
        "json_valid": "evaluation.metrics.json_match:JsonValid",
        "json_equal": "evaluation.metrics.json_match:JsonEqual",
        "tool_calls": "evaluation.metrics.tool_calls:ToolCallMatch",
        "refusal": "evaluation.metrics.refusal:Refusal",
    }
)

DEFAULT_METRICS: tuple[str, ...] = tuple(METRIC_CLASSES)


def build_metric(name: str) -> PairMetric:
    try:
        target = METRIC_CLASSES[name]
    except KeyError:
        known = ", ".join(sorted(METRIC_CLASSES))
        message = f"unknown metric {name!r} (known: {known})"
        raise ConfigError("evaluation.text_metrics", message) from None
    module_name, _, class_name = target.partition(":")
    metric = getattr(import_module(module_name), class_name)()
    if not isinstance(metric, PairMetric) or metric.name != name:
        raise ConfigError("evaluation.text_metrics", f"{target} is not a metric named {name!r}")
    return metric


def build_metrics(names: Sequence[str]) -> tuple[PairMetric, ...]:
    if len(set(names)) != len(names):
        raise ConfigError("evaluation.text_metrics", "a metric is listed twice")
    return tuple(build_metric(n) for n in names)
