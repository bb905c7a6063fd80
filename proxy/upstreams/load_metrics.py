"""A model server's own load, read from its Prometheus text: queue, batch and cache figures.

Each kind names its metrics; the figures are the same for all. Several series of one
metric (vLLM labels each engine) are added up, except cache usage, where the fullest
engine counts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True, slots=True)
class LoadReading:
    running: float | None = None  # requests being computed now
    waiting: float | None = None  # requests queued behind them
    kv_cache_usage: float | None = None  # 0-1
    prefix_cache_hits: float | None = None  # cumulative, in tokens
    prefix_cache_queries: float | None = None  # cumulative, in tokens
    prefix_cache_hit_rate: float | None = None  # when the server reports the rate itself


@dataclass(frozen=True, slots=True)
class LoadNames:
    """Sample names per figure; the first present wins (newer names first)."""

    running: tuple[str, ...] = ()
    waiting: tuple[str, ...] = ()
    kv_cache_usage: tuple[str, ...] = ()
    prefix_cache_hits: tuple[str, ...] = ()
    prefix_cache_queries: tuple[str, ...] = ()
    prefix_cache_hit_rate: tuple[str, ...] = ()

    def merged(self, other: LoadNames) -> LoadNames:
        return LoadNames(
            *(getattr(self, f) + getattr(other, f) for f in LoadNames.__dataclass_fields__)
        )


# vLLM 0.9 renamed gpu_cache_usage_perc and the gpu_prefix_cache_* counters; releases
# before V1 reported the hit rate as a gauge.
VLLM_NAMES = LoadNames(
    running=("vllm:num_requests_running",),
    waiting=("vllm:num_requests_waiting",),
    kv_cache_usage=("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"),
    prefix_cache_hits=("vllm:prefix_cache_hits_total", "vllm:gpu_prefix_cache_hits_total"),
    prefix_cache_queries=(
        "vllm:prefix_cache_queries_total",
        "vllm:gpu_prefix_cache_queries_total",
    ),
    prefix_cache_hit_rate=("vllm:gpu_prefix_cache_hit_rate",),
)
TGI_NAMES = LoadNames(running=("tgi_batch_current_size",), waiting=("tgi_queue_size",))
# llama.cpp's server exports these with --metrics.
LLAMACPP_NAMES = LoadNames(
    running=("llamacpp:requests_processing",), waiting=("llamacpp:requests_deferred",)
)
# A server known only as OpenAI-compatible may be any of them.
ANY_NAMES = VLLM_NAMES.merged(TGI_NAMES).merged(LLAMACPP_NAMES)


def parse_load(text: str, names: LoadNames) -> LoadReading:
    """The figures ``names`` asks for; a figure the text lacks is None.

    Raises ValueError when ``text`` is not Prometheus text.
    """
    sums: dict[str, float] = {}
    peaks: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            sums[sample.name] = sums.get(sample.name, 0.0) + sample.value
            peaks[sample.name] = max(peaks.get(sample.name, sample.value), sample.value)

    def first(candidates: Iterable[str], values: dict[str, float]) -> float | None:
        return next((values[n] for n in candidates if n in values), None)

    return LoadReading(
        running=first(names.running, sums),
        waiting=first(names.waiting, sums),
        kv_cache_usage=first(names.kv_cache_usage, peaks),
        prefix_cache_hits=first(names.prefix_cache_hits, sums),
        prefix_cache_queries=first(names.prefix_cache_queries, sums),
        prefix_cache_hit_rate=first(names.prefix_cache_hit_rate, peaks),
    )
