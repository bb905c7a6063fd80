"""Health probes against a real llama.cpp-based server: the adapter finds the mapped model
served (or says which one is missing), and a serving proxy reports it in /readyz."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from proxy.config import UpstreamConfig
from proxy.upstreams import build_upstream
from tests.fakes import FakeOpenAI, start_server
from tests.realmodel.conftest import LlamaServer
from understudy.server import start_site
from understudy.settings import load_settings
from understudy.wiring import build_app

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("kind", ["openai", "llamacpp"])
async def test_the_probe_finds_the_mapped_model_or_names_the_missing_one(
    llama_server: LlamaServer, kind: str
) -> None:
    served = UpstreamConfig(
        "llama", llama_server.url, kind=kind, model_map={"gpt-4o-mini": llama_server.model}
    )
    missing = UpstreamConfig(
        "llama", llama_server.url, kind=kind, model_map={"gpt-4o-mini": "llama-3.1-8b"}
    )
    for config, healthy in ((served, True), (missing, False)):
        upstream = build_upstream(config)
        await upstream.start()
        try:
            result = await upstream.probe(5.0)
        finally:
            await upstream.close()
        assert result.healthy is healthy, result
        assert result.missing_models == (() if healthy else ("llama-3.1-8b",))


async def test_a_serving_proxy_reports_the_real_candidate_healthy(
    llama_server: LlamaServer, tmp_path: Path
) -> None:
    primary = await start_server(FakeOpenAI(persona="openai").app)
    settings = load_settings(
        primary={"base_url": f"{primary.url}/v1"},
        candidates=[
            {
                "name": "llama",
                "kind": "llamacpp",
                "base_url": llama_server.url,
                "model_map": {"gpt-4o-mini": llama_server.model},
                "probe_interval_s": 0.5,
            }
        ],
        rollout={"mode": "shadow", "candidate": "llama"},
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'understudy.db'}",
        storage={"spill_dir": str(tmp_path / "spill")},
    )
    site = await start_site(build_app(settings, registry=CollectorRegistry()), "127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as session, session.get(f"{site.url}/readyz") as answer:
            status, body = answer.status, await answer.json()
    finally:
        await site.stop()
        await primary.close()
    assert status == 200
    assert body["candidates"]["llama"]["health"] == "healthy", body
    assert body["candidates"]["llama"]["missing_models"] == []
