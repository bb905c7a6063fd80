"""Prometheus counters for the exchange writer, on a registry the caller owns."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge


class WriterMetrics:
    """Every exchange ends up counted as written, replayed after a spill, rejected or dropped."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.written = Counter(
            "understudy_storage_written",
            "Exchanges committed to the database straight from the queue.",
            registry=registry,
        )
        self.spilled = Counter(
            "understudy_storage_spilled",
            "Exchanges appended to a spill file because the database or the queue could not "
            "take them.",
            registry=registry,
        )
        self.replayed = Counter(
            "understudy_storage_replayed",
            "Exchanges committed to the database from spill files.",
            registry=registry,
        )
        self.rejected = Counter(
            "understudy_storage_rejected",
            "Exchanges the database refused as invalid, kept in rejected-*.jsonl files.",
            registry=registry,
        )
        self.dropped = Counter(
            "understudy_storage_dropped",
            "Exchanges lost: neither stored nor spilled (the spill disk failed too).",
            registry=registry,
        )
        self.queue_depth = Gauge(
            "understudy_storage_queue_depth",
            "Exchanges waiting in memory for the writer.",
            registry=registry,
        )

    def track_queue(self, depth: Callable[[], float]) -> None:
        self.queue_depth.set_function(depth)
