"""The configured upstreams: the primary, its separate noise pool, and the candidates."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from proxy.config import UpstreamConfig
from proxy.upstreams import build_upstream
from proxy.upstreams.port import Upstream

# Noise calls are a sample for measuring the primary's own variance: a few suffice,
# and they must never take connections the served pool needs.
NOISE_MAX_CONCURRENCY = 64


@dataclass
class UpstreamSet:
    primary: Upstream
    noise: Upstream  # the primary again, on its own pool so noise calls never queue served ones
    candidates: dict[str, Upstream] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        primary: UpstreamConfig,
        candidates: list[UpstreamConfig],
        *,
        noise_max_concurrency: int = NOISE_MAX_CONCURRENCY,
    ) -> UpstreamSet:
        """``primary.max_concurrency`` sizes the served pool; noise calls get their own cap."""
        if primary.kind != "openai":
            raise ValueError("the primary must be an OpenAI-compatible server (kind 'openai')")
        return cls(
            primary=build_upstream(primary),
            noise=build_upstream(replace(primary, max_concurrency=noise_max_concurrency)),
            candidates={c.name: build_upstream(c) for c in candidates},
        )

    def __iter__(self) -> Iterator[Upstream]:
        yield self.primary
        yield self.noise
        yield from self.candidates.values()

    def caps(self) -> dict[str, int]:
        caps = {name: u.config.max_concurrency for name, u in self.candidates.items()}
        caps[self.noise.name] = self.noise.config.max_concurrency
        return caps

    async def start(self) -> None:
        for upstream in self:
            await upstream.start()

    async def close(self) -> None:
        for upstream in self:
            await upstream.close()
