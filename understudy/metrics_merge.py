"""One ``/metrics`` for several processes: their Prometheus texts merged into one.

Counters and histograms add up across workers. A gauge adds up when it counts
something each worker holds (requests in flight, queue depth); otherwise the
workers report the same state, seen at slightly different moments, and the merge
keeps the worst of them: the highest value, or for health the lowest.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

# Gauges that count what each worker holds: the host's figure is their sum.
SUMMED_GAUGES = frozenset(
    {
        "understudy_requests_in_flight",
        "understudy_shadows_in_flight",
        "understudy_sink_queue_depth",
        "understudy_recorder_connected",
        "understudy_rollout_controller_leader",
    }
)
# Gauges where 1 is good: a candidate is healthy only if every worker finds it so.
LOWEST_GAUGES = frozenset({"understudy_candidate_healthy"})


def _combine(family: Metric, sample: Sample, old: float, new: float) -> float:
    if sample.name.endswith("_created"):
        return min(old, new)  # when the oldest worker's series began
    if family.type == "gauge":
        if family.name in SUMMED_GAUGES:
            return old + new
        return min(old, new) if family.name in LOWEST_GAUGES else max(old, new)
    return old + new  # counters, histograms, summaries


def merge(texts: Iterable[bytes]) -> bytes:
    """The texts' metric families with like samples combined, as one exposition."""
    families: dict[str, Metric] = {}
    values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for text in texts:
        for family in text_string_to_metric_families(text.decode("utf-8")):
            kept = families.setdefault(family.name, family)
            slots = values.setdefault(family.name, {})
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                old = slots.get(key)
                slots[key] = sample.value if old is None else _combine(kept, sample, old, sample.value)
    merged = []
    for name, family in families.items():
        out = Metric(family.name, family.documentation, family.type, family.unit)
        for (sample_name, labels), value in values[name].items():
            out.add_sample(sample_name, dict(labels), value)
        merged.append(out)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(merged))
    return generate_latest(registry)


class _Fixed:
    """A collector that yields metric families already built."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)

    def describe(self) -> list[Any]:
        return []
