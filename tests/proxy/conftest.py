"""A rig of real servers on 127.0.0.1: fake OpenAI primary, fake candidates, the proxy."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from openai import AsyncOpenAI
from prometheus_client import CollectorRegistry

from core import Exchange
from core.memory_sink import InMemorySink
from tests.fakes import FakeOllama, FakeOpenAI, RunningServer, start_server
from understudy.logs import configure_logging
from understudy.server import RunningSite, start_site
from understudy.settings import LogFormat, load_settings
from understudy.wiring import build_app

CLIENT_KEY = "sk-client-canary-7f3a9c"
CANDIDATE_KEY = "sk-candidate-canary-51d2"


@dataclass
class Rig:
    primary: FakeOpenAI
    candidate: FakeOpenAI
    ollama: FakeOllama
    sink: InMemorySink
    registry: CollectorRegistry
    proxy: RunningSite
    logs: io.StringIO
    servers: list[RunningServer] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"{self.proxy.url}/v1"

    def client(self, **kw: Any) -> AsyncOpenAI:
        return AsyncOpenAI(base_url=self.base_url, api_key=CLIENT_KEY, max_retries=0, **kw)

    async def exchanges(self, count: int, timeout: float = 5.0) -> list[Exchange]:
        """Wait until ``count`` exchanges were recorded (shadows finish after the client)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.sink.exchanges) < count:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(
                    f"{len(self.sink.exchanges)} exchanges recorded, wanted {count}"
                )
            await asyncio.sleep(0.01)
        return list(self.sink.exchanges)

    def log_events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.logs.getvalue().splitlines() if line.strip()]

    def metric(self, name: str, **labels: str) -> float:
        value = self.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value


RigFactory = Callable[..., Awaitable[Rig]]


@pytest.fixture
async def make_rig() -> AsyncIterator[RigFactory]:
    """Build a rig; keyword arguments are Settings overrides (nested dicts merge)."""
    started: list[Rig] = []

    async def factory(
        *,
        candidate_kind: str = "openai",
        candidate: dict[str, Any] | None = None,
        primary: dict[str, Any] | None = None,
        record: bool = False,
        **overrides: Any,
    ) -> Rig:
        fake_primary = FakeOpenAI(persona="openai")
        fake_candidate = FakeOpenAI(persona="candidate", expected_api_key=CANDIDATE_KEY)
        fake_ollama = FakeOllama()
        servers = [await start_server(f.app) for f in (fake_primary, fake_candidate, fake_ollama)]
        candidate_url = servers[2].url if candidate_kind == "ollama" else f"{servers[1].url}/v1"
        candidate_settings = {
            "name": "local",
            "base_url": candidate_url,
            "kind": candidate_kind,
            "api_key": CANDIDATE_KEY,
            "model_map": {"gpt-4o-mini": "llama3.1:8b"},
            "timeout_s": 5,
            **(candidate or {}),
        }
        settings = load_settings(
            primary={"base_url": f"{servers[0].url}/v1", **(primary or {})},
            candidates=[candidate_settings],
            **{
                "rollout": {"mode": "shadow", "candidate": "local"},
                "shutdown_grace_s": 0.5,
                **overrides,
            },
        )
        logs = io.StringIO()
        configure_logging("info", LogFormat.JSON, stream=logs, cache=False)
        sink, registry = InMemorySink(), CollectorRegistry()
        # record=True: exchanges go through the real writer to settings.database_url instead.
        app = build_app(settings, sink=None if record else sink, registry=registry)
        site = await start_site(app, "127.0.0.1", 0)
        rig = Rig(fake_primary, fake_candidate, fake_ollama, sink, registry, site, logs, servers)
        started.append(rig)
        return rig

    yield factory
    for rig in started:
        await rig.proxy.stop()
        for server in rig.servers:
            await server.close()


def chat(content: str = "Tell me about sourdough.", **kw: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}], **kw}
