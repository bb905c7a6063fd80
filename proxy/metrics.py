"""Prometheus metrics for the proxy, on a registry the composition root owns."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from core import Observation, Role, Route

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120)


# Calls made in the background: their failures are counted, since no client saw them.
BACKGROUND_ROLES = frozenset({Role.SHADOW, Role.REVERSE_SHADOW, Role.NOISE})


class ProxyMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter(
            "understudy_requests",
            "Upstream calls by route, arm, upstream and outcome.",
            ["route", "arm", "upstream", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "understudy_upstream_latency_seconds",
            "Total upstream latency per arm.",
            ["route", "arm", "upstream"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.ttft = Histogram(
            "understudy_upstream_ttft_seconds",
            "Time to first token per arm.",
            ["route", "arm", "upstream"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.shadows_in_flight = Gauge(
            "understudy_shadows_in_flight",
            "Background calls (shadow, reverse shadow and noise) running now.",
            ["upstream"],
            registry=registry,
        )
        self.shadows_skipped = Counter(
            "understudy_shadows_skipped",
            "Background calls (shadow, reverse shadow and noise) not made: at_capacity (the upstream's cap "
            "was full), overload (the proxy was shedding background work), unhealthy (the "
            "candidate's health probe failed), backpressure (the candidate's own queue was "
            "over its threshold) or breaker_open.",
            ["upstream", "reason"],
            registry=registry,
        )
        self.shadows_failed = Counter(
            "understudy_shadows_failed",
            "Background calls that ended in an error, by error kind.",
            ["upstream", "error_kind"],
            registry=registry,
        )
        self.fallbacks = Counter(
            "understudy_fallbacks",
            "Requests the candidate was to serve that the primary served, by reason: an "
            "error kind, at_capacity, breaker_open or unhealthy.",
            ["route", "upstream", "reason"],
            registry=registry,
        )
        self.rejected = Counter(
            "understudy_rejected_requests",
            "Client requests refused before any upstream call.",
            ["route", "code"],
            registry=registry,
        )
        self.overloaded = Counter(
            "understudy_overloaded_requests",
            "Client requests refused with 503 because too many were in flight.",
            registry=registry,
        )
        self.requests_in_flight = Gauge(
            "understudy_requests_in_flight",
            "Client requests on the API being handled now.",
            registry=registry,
        )
        self.sink_queue_depth = Gauge(
            "understudy_sink_queue_depth",
            "Exchanges waiting to be recorded.",
            registry=registry,
        )
        self.sink_dropped = Counter(
            "understudy_sink_dropped",
            "Exchanges the proxy could not hand to the sink.",
            registry=registry,
        )

        self._children: dict[tuple[str, str, str, str], tuple[Any, Any, Any]] = {}
        self._in_flight_children: dict[str, Any] = {}

    def in_flight_of(self, upstream: str) -> Any:
        """The shadows-in-flight gauge's child for ``upstream``, resolved once."""
        child = self._in_flight_children.get(upstream)
        if child is None:
            child = self._in_flight_children[upstream] = self.shadows_in_flight.labels(upstream)
        return child

    def watch_sink_depth(self, depth: Callable[[], int]) -> None:
        self.sink_queue_depth.set_function(lambda: float(depth()))

    def watch_in_flight(self, in_flight: Callable[[], int]) -> None:
        self.requests_in_flight.set_function(lambda: float(in_flight()))

    def observe_arm(self, route: Route, obs: Observation) -> None:
        role = obs.role.value
        status = obs.error_kind.value if obs.error_kind and obs.status is None else str(obs.status)
        key = (route.value, role, obs.upstream, status)
        children = self._children.get(key)
        if children is None:  # resolving label children is the costly part: once per key
            children = (
                self.requests.labels(*key),
                self.latency.labels(*key[:3]),
                self.ttft.labels(*key[:3]),
            )
            self._children[key] = children
        requests, latency, ttft = children
        requests.inc()
        if obs.latency_ms is not None:
            latency.observe(obs.latency_ms / 1000)
        if obs.ttft_ms is not None:
            ttft.observe(obs.ttft_ms / 1000)
        if obs.error_kind is not None and obs.role in BACKGROUND_ROLES:
            self.shadows_failed.labels(obs.upstream, obs.error_kind.value).inc()
