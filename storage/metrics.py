"""Prometheus counters for the exchange writer, on a registry the caller owns."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


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
        # The queue depth is exported once, by the proxy, as understudy_sink_queue_depth.
