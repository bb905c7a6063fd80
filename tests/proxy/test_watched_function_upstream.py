"""Health and back-pressure need nothing but the upstream protocol: a candidate answered
in-process by functions is probed, scraped and skipped exactly as an HTTP one, and a
start-up probe that finds its mapped model missing stops a proxy that would serve from it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from openai import AsyncOpenAI
from prometheus_client import CollectorRegistry

from core import ConfigError, FlagState, RolloutMode
from core.memory_sink import InMemorySink
from proxy.app import create_proxy_app
from proxy.config import Limits, UpstreamConfig, WatchConfig
from proxy.health import serving_candidates
from proxy.upstream_set import UpstreamSet
from proxy.upstreams.function import FunctionUpstream
from proxy.upstreams.load_metrics import LoadReading
from proxy.upstreams.port import HEALTHY, ProbeResult
from tests.proxy.test_function_upstream import Answering, Flags
from tests.proxy.watched import until
from understudy.server import RunningSite, start_site


class Server:
    """What the function candidate reports: its health and its queue, switchable."""

    def __init__(self) -> None:
        self.health = HEALTHY
        self.waiting = 0.0
        self.probes = 0

    async def probe(self) -> ProbeResult:
        self.probes += 1
        return self.health

    async def load(self) -> LoadReading:
        return LoadReading(running=1.0, waiting=self.waiting)


@asynccontextmanager
async def proxy(
    server: Server, candidate: Answering, mode: RolloutMode, registry: CollectorRegistry
) -> AsyncIterator[tuple[RunningSite, InMemorySink]]:
    primary = Answering("openai")
    primary_config = UpstreamConfig("openai", "http://primary.invalid/v1")
    watch = WatchConfig(
        probe_interval_s=0.05,
        metrics_url="http://candidate.invalid/metrics",
        scrape_interval_s=0.05,
    )
    candidate_config = UpstreamConfig(
        "local", "http://candidate.invalid/v1", model_map={"gpt-4o-mini": "m"}, watch=watch
    )
    upstreams = UpstreamSet(
        primary=FunctionUpstream(primary_config, primary),
        noise=FunctionUpstream(primary_config, primary),
        candidates={
            "local": FunctionUpstream(
                candidate_config, candidate, probe_handler=server.probe, load_handler=server.load
            )
        },
    )
    sink = InMemorySink()
    app = create_proxy_app(
        upstreams=upstreams,
        flags=Flags(FlagState("k", mode, "local", 100.0, 1.0, 0.0)),
        sink=sink,
        registry=registry,
        limits=Limits(),
        redact=lambda text: text,
    )
    site = await start_site(app, "127.0.0.1", 0)
    try:
        yield site, sink
    finally:
        await site.stop()


async def ask(site: RunningSite) -> None:
    client = AsyncOpenAI(base_url=f"{site.url}/v1", api_key="sk-client", max_retries=0)
    await client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    await client.close()


async def test_a_function_candidate_is_probed_scraped_and_skipped() -> None:
    server, candidate, registry = Server(), Answering("local"), CollectorRegistry()

    def skipped(reason: str) -> float:
        labels = {"upstream": "local", "reason": reason}
        return registry.get_sample_value("understudy_shadows_skipped_total", labels) or 0.0

    async with proxy(server, candidate, RolloutMode.SHADOW, registry) as (site, sink):
        await ask(site)
        await until(lambda: len(candidate.seen) == 1, 2)
        server.health = ProbeResult.failed("status 503")
        await until(
            lambda: (
                registry.get_sample_value("understudy_candidate_healthy", {"candidate": "local"})
                == 0
            ),
            2,
        )
        await ask(site)
        assert skipped("unhealthy") == 1
        server.health, server.waiting = HEALTHY, 3.0
        await until(
            lambda: (
                registry.get_sample_value("understudy_candidate_healthy", {"candidate": "local"})
                == 1
                and registry.get_sample_value(
                    "understudy_candidate_requests_waiting", {"candidate": "local"}
                )
                == 3
            ),
            2,
        )
        await ask(site)
        assert skipped("backpressure") == 1
        await until(lambda: len(sink.exchanges) == 3, 2)
        await asyncio.sleep(0.05)
        assert len(candidate.seen) == 1
    probes = server.probes
    await asyncio.sleep(0.15)
    assert server.probes == probes  # the loops stopped with the proxy


async def test_a_missing_model_at_start_stops_a_proxy_that_would_serve_from_it() -> None:
    server, candidate = Server(), Answering("local")
    server.health = ProbeResult(False, "model missing", ("m",))
    with pytest.raises(ConfigError, match=r"'local'.*'m'"):
        async with proxy(server, candidate, RolloutMode.CUTOVER, CollectorRegistry()):
            pass
    async with proxy(server, candidate, RolloutMode.SHADOW, CollectorRegistry()) as (site, _):
        await ask(site)  # in shadow it starts, and serves from the primary
    assert candidate.seen == []


@pytest.mark.parametrize(
    ("mode", "percent", "killed", "serves"),
    [
        (RolloutMode.SHADOW, 0.0, False, False),
        (RolloutMode.SPLIT, 0.0, False, False),  # a split of nobody serves no one yet
        (RolloutMode.SPLIT, 5.0, False, True),
        (RolloutMode.CUTOVER, 0.0, False, True),
        (RolloutMode.CUTOVER, 0.0, True, False),  # the kill switch: the primary serves all
    ],
)
def test_which_rollouts_serve_users_from_the_candidate(
    mode: RolloutMode, percent: float, killed: bool, serves: bool
) -> None:
    flags = Flags(FlagState("k", mode, "local", percent, 1.0, 0.0, killed=killed))
    assert serving_candidates(flags) == ({"local"} if serves else set())
