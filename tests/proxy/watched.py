"""A proxy whose candidate is watched: health probes and metric scrapes on short intervals.

Unlike the shared rig, the candidate fake is set up before the proxy starts, so the
start-up probe already sees it as the test wants.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from openai import AsyncOpenAI
from prometheus_client import CollectorRegistry

from core.memory_sink import InMemorySink
from tests.fakes import FakeOpenAI, RunningServer, start_server
from understudy.logs import configure_logging
from understudy.server import RunningSite, start_site
from understudy.settings import LogFormat, load_settings
from understudy.wiring import build_app

CLIENT_KEY = "sk-client-watched-0c1e"
# Every answer from the candidate fake is recognisably its own.
CANDIDATE_MODEL = "meta-llama/Llama-3.1-8B-Instruct"
PROBE_S = 0.2  # the probe interval the tests run with


def vllm_candidate() -> FakeOpenAI:
    fake = FakeOpenAI(persona="candidate", models=[CANDIDATE_MODEL])
    fake.health_status = 200
    return fake


@dataclass
class Watched:
    primary: FakeOpenAI
    candidate: FakeOpenAI
    candidate_server: RunningServer
    sink: InMemorySink
    registry: CollectorRegistry
    proxy: RunningSite
    logs: io.StringIO

    @property
    def base_url(self) -> str:
        return f"{self.proxy.url}/v1"

    def client(self) -> AsyncOpenAI:
        return AsyncOpenAI(base_url=self.base_url, api_key=CLIENT_KEY, max_retries=0)

    def metric(self, name: str, **labels: str) -> float:
        value = self.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value

    def chat_calls(self) -> int:
        return len(self.candidate.requests_to("/v1/chat/completions"))

    async def readyz(self) -> tuple[int, dict[str, Any]]:
        async with aiohttp.ClientSession() as s, s.get(self.proxy.url + "/readyz") as r:
            return r.status, await r.json()

    async def metrics_text(self) -> str:
        async with aiohttp.ClientSession() as s, s.get(self.proxy.url + "/metrics") as r:
            return await r.text()


async def until(check: Callable[[], bool], limit_s: float) -> float:
    """Wait for ``check``; returns how long it took, fails past ``limit_s``."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < limit_s, f"not within {limit_s} s"
        await asyncio.sleep(0.01)
    return time.monotonic() - start


@contextlib.asynccontextmanager
async def watched(
    candidate: FakeOpenAI | None = None,
    *,
    kind: str = "vllm",
    rollout: dict[str, Any] | None = None,
    **candidate_settings: Any,
) -> AsyncIterator[Watched]:
    """The proxy in front of a fake primary and ``candidate`` (a healthy vLLM by default);
    keyword arguments are the candidate's settings."""
    primary = FakeOpenAI(persona="openai")
    fake = candidate or vllm_candidate()
    servers = [await start_server(primary.app), await start_server(fake.app)]
    try:
        settings = load_settings(
            primary={"base_url": f"{servers[0].url}/v1"},
            candidates=[
                {
                    "name": "local",
                    "base_url": f"{servers[1].url}/v1",
                    "kind": kind,
                    "model_map": {"gpt-4o-mini": CANDIDATE_MODEL},
                    "timeout_s": 5,
                    "probe_interval_s": PROBE_S,
                    "probe_timeout_s": 1,
                    **candidate_settings,
                }
            ],
            rollout=rollout or {"mode": "shadow", "candidate": "local"},
            shutdown_grace_s=0.5,
            storage={"enabled": False},
        )
        logs = io.StringIO()
        configure_logging("info", LogFormat.JSON, stream=logs, cache=False)
        sink, registry = InMemorySink(), CollectorRegistry()
        app = build_app(settings, sink=sink, registry=registry)
        site = await start_site(app, "127.0.0.1", 0)
        try:
            yield Watched(primary, fake, servers[1], sink, registry, site, logs)
        finally:
            await site.stop()
    finally:
        for server in servers:
            await server.close()
