"""One /metrics for several processes: how their figures combine."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from understudy.metrics_merge import merge


def worker(
    requests: int, in_flight: int, healthy: int, staleness: float, latencies: list[float]
) -> bytes:
    registry = CollectorRegistry()
    Counter("understudy_requests", "calls", ["arm"], registry=registry).labels("served").inc(
        requests
    )
    Gauge("understudy_requests_in_flight", "now", registry=registry).set(in_flight)
    health = Gauge("understudy_candidate_healthy", "1 ok", ["candidate"], registry=registry)
    health.labels("local").set(healthy)
    Gauge("understudy_rollout_flag_staleness_seconds", "age", registry=registry).set(staleness)
    latency = Histogram("understudy_upstream_latency_seconds", "t", registry=registry)
    for value in latencies:
        latency.observe(value)
    return generate_latest(registry)


def samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    }


def test_counters_and_histograms_add_up_gauges_keep_their_meaning() -> None:
    a = worker(3, in_flight=2, healthy=1, staleness=0.5, latencies=[0.01, 0.2])
    b = worker(4, in_flight=5, healthy=0, staleness=2.0, latencies=[0.3])
    merged = samples(merge([a, b]))
    assert merged[("understudy_requests_total", (("arm", "served"),))] == 7
    assert merged[("understudy_requests_in_flight", ())] == 7  # each worker holds its own
    assert merged[("understudy_candidate_healthy", (("candidate", "local"),))] == 0  # the worst
    assert merged[("understudy_rollout_flag_staleness_seconds", ())] == 2.0  # the stalest
    assert merged[("understudy_upstream_latency_seconds_count", ())] == 3
    assert merged[("understudy_upstream_latency_seconds_bucket", (("le", "0.25"),))] == 2
    assert merged[("understudy_upstream_latency_seconds_sum", ())] == 0.51
    created = [v for (name, _), v in merged.items() if name == "understudy_requests_created"]
    own = [v for (name, _), v in samples(a).items() if name == "understudy_requests_created"]
    assert created == own  # the series began when the first worker's did


def test_one_process_merges_into_itself_unchanged() -> None:
    alone = worker(3, in_flight=1, healthy=1, staleness=0.1, latencies=[0.05])
    assert samples(merge([alone])) == samples(alone)
