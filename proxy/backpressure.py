"""Back-pressure from a candidate's own metrics: its queue decides whether shadows are sent.

A loop per scraped candidate reads the server's Prometheus page and re-exports its
figures as Understudy gauges. While the server reports more queued requests than its
threshold, shadows to it are skipped: users it serves (split, cutover) outrank
mirrored copies, so mirroring never makes them wait. Served calls are never shed here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge

from core import UpstreamError
from proxy.tasks import BackgroundTasks
from proxy.upstreams.load_metrics import LoadReading
from proxy.upstreams.port import Upstream

log = structlog.get_logger("understudy.backpressure")


class CandidatePressure:
    """Every scraped candidate's last reading, the gauges that show it, and the loops."""

    def __init__(self, candidates: Mapping[str, Upstream], registry: CollectorRegistry) -> None:
        self._scraped = {
            name: (upstream, url)
            for name, upstream in candidates.items()
            if (url := upstream.config.watch.metrics_url) is not None
        }
        self._readings: dict[str, LoadReading] = {}
        self._hit_rates: dict[str, float] = {}
        self._pressed: set[str] = set()

        def gauge(name: str, doc: str) -> Gauge:
            return Gauge(name, doc, ["candidate"], registry=registry)

        self._running = gauge(
            "understudy_candidate_requests_running",
            "Requests the candidate reports computing now (vLLM num_requests_running, TGI "
            "batch_current_size, llama.cpp requests_processing).",
        )
        self._waiting = gauge(
            "understudy_candidate_requests_waiting",
            "Requests the candidate reports queued (vLLM num_requests_waiting, TGI "
            "queue_size, llama.cpp requests_deferred).",
        )
        self._kv_cache = gauge(
            "understudy_candidate_kv_cache_usage", "The candidate's KV-cache usage, 0-1 (vLLM)."
        )
        self._hit_rate = gauge(
            "understudy_candidate_prefix_cache_hit_rate",
            "The candidate's prefix cache hit rate over the last scrape interval, 0-1 (vLLM).",
        )
        self._up = gauge(
            "understudy_candidate_metrics_up",
            "1 when the candidate's metrics page was read at the last scrape, else 0.",
        )
        self._failures = Counter(
            "understudy_candidate_scrape_failures",
            "Scrapes of a candidate's metrics page that failed, by error kind.",
            ["candidate", "error_kind"],
            registry=registry,
        )

    def shedding(self, candidate: str) -> bool:
        """Whether shadows to ``candidate`` are skipped now: its queue is over its threshold."""
        return candidate in self._pressed

    def record(self, candidate: str, reading: LoadReading) -> None:
        previous = self._readings.get(candidate)
        self._readings[candidate] = reading
        self._up.labels(candidate).set(1)
        for gauge, value in (
            (self._running, reading.running),
            (self._waiting, reading.waiting),
            (self._kv_cache, reading.kv_cache_usage),
        ):
            if value is not None:
                gauge.labels(candidate).set(value)
        if (rate := _hit_rate(previous, reading)) is not None:
            self._hit_rates[candidate] = rate
            self._hit_rate.labels(candidate).set(rate)
        threshold = self._scraped[candidate][0].config.watch.shed_shadows_above_queue
        pressed = reading.waiting is not None and reading.waiting > threshold
        if pressed and candidate not in self._pressed:
            log.warning("shadows_shed", candidate=candidate, waiting=reading.waiting)
            self._pressed.add(candidate)
        elif not pressed and candidate in self._pressed:
            log.info("shadows_resumed", candidate=candidate, waiting=reading.waiting)
            self._pressed.discard(candidate)

    def failed(self, candidate: str, error: UpstreamError) -> None:
        """A scrape failed: nothing is known of the queue, so nothing is shed on its account."""
        self._failures.labels(candidate, error.kind.value).inc()
        self._up.labels(candidate).set(0)
        self._readings.pop(candidate, None)
        if candidate in self._pressed:
            self._pressed.discard(candidate)
            log.info("shadows_resumed", candidate=candidate, waiting=None)

    async def scrape(self, candidate: str) -> None:
        upstream, url = self._scraped[candidate]
        try:
            reading = await upstream.read_load(url, upstream.config.watch.probe_timeout_s)
        except UpstreamError as exc:
            self.failed(candidate, exc)
        else:
            self.record(candidate, reading)

    def start(self, tasks: BackgroundTasks) -> None:
        for name in self._scraped:
            tasks.spawn(self._keep_scraping(name), name=f"backpressure:{name}")

    async def _keep_scraping(self, candidate: str) -> None:
        interval = self._scraped[candidate][0].config.watch.scrape_interval_s
        while True:
            await self.scrape(candidate)
            await asyncio.sleep(interval)

    def detail(self, candidate: str) -> dict[str, Any] | None:
        """The candidate's load for /readyz, or None when it is not scraped."""
        if candidate not in self._scraped:
            return None
        reading = self._readings.get(candidate)
        return {
            "metrics_up": reading is not None,
            "requests_running": reading.running if reading else None,
            "requests_waiting": reading.waiting if reading else None,
            "kv_cache_usage": reading.kv_cache_usage if reading else None,
            "prefix_cache_hit_rate": self._hit_rates.get(candidate),
            "shedding_shadows": self.shedding(candidate),
        }


def _hit_rate(previous: LoadReading | None, reading: LoadReading) -> float | None:
    """Hits over queries since the last reading (since start on the first); a server that
    reports the rate itself is taken at its word. None: no query in between."""
    if reading.prefix_cache_hit_rate is not None:
        return reading.prefix_cache_hit_rate
    if reading.prefix_cache_hits is None or reading.prefix_cache_queries is None:
        return None
    hits, queries = reading.prefix_cache_hits, reading.prefix_cache_queries
    if (
        previous is not None
        and previous.prefix_cache_hits is not None
        and previous.prefix_cache_queries is not None
        and previous.prefix_cache_queries <= queries  # a restart resets the counters
    ):
        hits -= previous.prefix_cache_hits
        queries -= previous.prefix_cache_queries
    return hits / queries if queries > 0 else None
