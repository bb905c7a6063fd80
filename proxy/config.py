"""Plain configuration the proxy is built from (the composition root maps Settings onto it)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class WatchConfig:
    """How a candidate's health and load are watched; every part is off unless set."""

    probe_interval_s: float | None = None  # None: no health probes
    probe_timeout_s: float = 5.0
    metrics_url: str | None = None  # the server's Prometheus page; None: not scraped
    scrape_interval_s: float = 1.0
    # Shadows are skipped while the server reports more queued requests than this.
    shed_shadows_above_queue: int = 0


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    name: str
    base_url: str  # ends in the API root, e.g. https://api.openai.com/v1
    kind: str = "openai"
    api_key: str | None = None  # None: no Authorization (or the client's, for the primary)
    model_map: Mapping[str, str] = field(default_factory=dict)
    timeout_s: float = 60.0
    connect_timeout_s: float = 10.0
    stream_idle_timeout_s: float = 60.0  # longest silence inside a streamed answer
    max_concurrency: int = 64  # candidates and noise: concurrent calls; primary: its pool
    idle_connection_timeout_s: float = 30.0  # an unused pooled connection is closed after this
    watch: WatchConfig = field(default_factory=WatchConfig)  # candidates only
    responses: str | None = None  # "native" or "translate"; None: by kind (proxy.responses)
    # Ollama only: how long the model stays loaded after a call, and `think` for requests
    # that set neither it nor reasoning_effort. None: the server's own defaults.
    keep_alive: str | int | None = None
    think: bool | str | None = None

    def mapped_model(self, requested: str) -> str:
        return self.model_map.get(requested, requested)


@dataclass(frozen=True, slots=True)
class ShadowCandidate:
    """A candidate mirrored beside the rollout's own, on ``rate`` of primary-served requests."""

    name: str
    rate: float


@dataclass(frozen=True, slots=True)
class Limits:
    max_body_bytes: int = 8 * 1024 * 1024
    max_n: int = 8
    max_tokens: int = 32768
    clamp: bool = True  # False: reject oversized n / max_tokens with a 400
    max_recorded_chars: int = 200_000
    max_header_bytes: int = 16384
    max_headers: int = 100
    header_timeout_s: float = 10.0
    body_timeout_s: float = 60.0
    max_json_depth: int = 64
    max_concurrent_requests: int = 1024
    shed_shadows_at: float = 0.75


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    """When a candidate's circuit breaker opens, and for how long."""

    enabled: bool = True
    consecutive_failures: int = 5  # this many failed calls in a row open it
    window_s: float = 30.0  # the sliding window the error rate is taken over
    min_calls: int = 20  # fewer calls than this in the window: the rate is not judged
    error_rate: float = 0.5  # this share of failed calls in the window opens it
    cooldown_s: float = 30.0  # open this long, then one probe call is let through
