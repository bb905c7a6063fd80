"""Candidate health: each kind's probe against real fake servers, and what the proxy does
with the verdict: an unhealthy candidate gets no shadows and serves no one, is shown on
/readyz (which stays 200) and in the metrics, and is used again once a probe passes."""

from __future__ import annotations

import json
import socket

import pytest

from core import Role
from proxy.config import UpstreamConfig
from proxy.upstreams import build_upstream
from proxy.upstreams.port import ProbeResult
from tests.fakes import FakeOllama, FakeOpenAI, Fault, running
from tests.proxy.watched import CANDIDATE_MODEL, PROBE_S, Watched, until, watched

MODEL_MAP = {"gpt-4o-mini": CANDIDATE_MODEL}


async def probe(kind: str, base_url: str, model_map: dict[str, str] = MODEL_MAP) -> ProbeResult:
    upstream = build_upstream(
        UpstreamConfig(name="c", base_url=base_url, kind=kind, model_map=model_map)
    )
    await upstream.start()
    try:
        return await upstream.probe(timeout_s=1.0)
    finally:
        await upstream.close()


def server_like(health: int | None, models: list[str]) -> FakeOpenAI:
    fake = FakeOpenAI(persona="candidate", models=models)
    fake.health_status = health
    return fake


async def test_openai_kind_checks_the_model_list() -> None:
    fake = server_like(None, [CANDIDATE_MODEL])
    async with running(fake.app) as server:
        assert await probe("openai", f"{server.url}/v1") == ProbeResult(True)
        fake.models = ["gpt-4o"]
        assert await probe("openai", f"{server.url}/v1") == ProbeResult(
            False, "model missing", (CANDIDATE_MODEL,)
        )
        fake.fault = Fault.HTTP_500
        assert await probe("openai", f"{server.url}/v1") == ProbeResult(False, "status 500")
    assert [r.path for r in fake.requests] == ["/v1/models"] * 3


async def test_vllm_kind_asks_health_then_the_model_list() -> None:
    fake = server_like(503, [CANDIDATE_MODEL])
    async with running(fake.app) as server:
        assert await probe("vllm", f"{server.url}/v1") == ProbeResult(False, "status 503")
        fake.health_status = 200
        assert await probe("vllm", f"{server.url}/v1") == ProbeResult(True)
        fake.models = []
        result = await probe("vllm", f"{server.url}/v1")
        assert result.missing_models == (CANDIDATE_MODEL,) and not result.healthy
    assert [r.path for r in fake.requests] == ["/health", "/health", "/v1/models"] * 1 + [
        "/health",
        "/v1/models",
    ]


async def test_tgi_kind_asks_health_only() -> None:
    fake = server_like(200, [])  # TGI answers whatever model a request names
    async with running(fake.app) as server:
        assert await probe("tgi", f"{server.url}/v1") == ProbeResult(True)
        fake.health_status = 503
        assert await probe("tgi", f"{server.url}/v1") == ProbeResult(False, "status 503")
    assert [r.path for r in fake.requests] == ["/health", "/health"]


async def test_llamacpp_kind_falls_back_to_the_model_list_without_health() -> None:
    fake = server_like(200, [])
    async with running(fake.app) as server:
        assert await probe("llamacpp", f"{server.url}/v1") == ProbeResult(True)
        fake.health_status = 503  # llama.cpp's server while the model loads
        assert await probe("llamacpp", f"{server.url}/v1") == ProbeResult(False, "status 503")
        # No /health at all, as llama-cpp-python's server: its model list is checked.
        fake.health_status = None
        assert not (await probe("llamacpp", f"{server.url}/v1")).healthy
        fake.models = [CANDIDATE_MODEL]
        assert await probe("llamacpp", f"{server.url}/v1") == ProbeResult(True)
    assert [r.path for r in fake.requests][-2:] == ["/health", "/v1/models"]


async def test_ollama_kind_checks_the_model_is_pulled() -> None:
    fake = FakeOllama(models=["llama3.2:latest"])
    async with running(fake.app) as server:
        # A name without a tag is Ollama's ":latest".
        assert await probe("ollama", server.url, {"gpt-4o-mini": "llama3.2"}) == ProbeResult(True)
        result = await probe("ollama", server.url, {"gpt-4o-mini": "qwen2.5:7b"})
        assert result == ProbeResult(False, "model missing", ("qwen2.5:7b",))
        fake.models.append("qwen2.5:7b")  # pulled since
        assert await probe("ollama", server.url, {"gpt-4o-mini": "qwen2.5:7b"}) == ProbeResult(True)
    assert {r.path for r in fake.requests} == {"/api/tags"}


async def test_a_server_that_is_down_or_hangs_fails_its_probe() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]  # bound, never listening: refused
        for kind in ("openai", "vllm", "tgi", "llamacpp", "ollama"):
            result = await probe(kind, f"http://127.0.0.1:{closed_port}/v1")
            assert result == ProbeResult(False, "connect"), kind
    fake = server_like(200, [CANDIDATE_MODEL])
    fake.fault = Fault.HANG
    async with running(fake.app) as server:
        assert await probe("vllm", f"{server.url}/v1") == ProbeResult(False, "timeout")


async def shadowed(w: Watched, count: int) -> None:
    client = w.client()
    for _ in range(count):
        raw = await client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
        assert raw.headers["x-understudy-served-by"] == "openai"
    await client.close()


@pytest.mark.parametrize(
    "failure",
    ["health_503", "model_missing", "connection_reset"],
)
async def test_an_unhealthy_candidate_gets_no_shadows_until_it_recovers(failure: str) -> None:
    async with watched() as w:
        await shadowed(w, 2)
        await until(lambda: len(w.sink.exchanges) == 2, 5)
        assert w.chat_calls() == 2 and w.metric("understudy_candidate_healthy", candidate="local")

        if failure == "health_503":
            w.candidate.health_status = 503
        elif failure == "model_missing":
            w.candidate.models = ["some-other-model"]
        else:
            w.candidate.fault = Fault.RESET
        took = await until(
            lambda: w.metric("understudy_candidate_healthy", candidate="local") == 0,
            PROBE_S * 3,
        )
        assert took <= PROBE_S * 1.5 + 0.5  # within one interval, plus a probe's time

        status, body = await w.readyz()
        assert status == 200 and body["status"] == "ready"  # the primary still serves
        local = body["candidates"]["local"]
        assert local["health"] == "unhealthy" and local["problem"]
        if failure == "model_missing":
            assert local["missing_models"] == [CANDIDATE_MODEL]

        await shadowed(w, 5)
        await until(lambda: len(w.sink.exchanges) == 7, 5)
        assert w.chat_calls() == 2  # not one shadow while unhealthy
        skipped = w.metric("understudy_shadows_skipped_total", upstream="local", reason="unhealthy")
        assert skipped == 5
        assert all(e.arm(Role.SHADOW) is None for e in list(w.sink.exchanges)[2:])

        w.candidate.health_status, w.candidate.models, w.candidate.fault = (
            200,
            [CANDIDATE_MODEL],
            None,
        )
        await until(lambda: w.metric("understudy_candidate_healthy", candidate="local") == 1, 2)
        await shadowed(w, 2)
        await until(lambda: len(w.sink.exchanges) == 9, 5)
        assert w.chat_calls() == 4
        assert (await w.readyz())[1]["candidates"]["local"]["health"] == "healthy"
        events = [json.loads(line)["event"] for line in w.logs.getvalue().splitlines()]
        assert "candidate_unhealthy" in events and "candidate_recovered" in events


async def test_an_unhealthy_candidate_serves_no_one_in_split() -> None:
    async with watched(rollout={"mode": "split", "candidate": "local", "percent": 100}) as w:
        client = w.client()

        async def served_by() -> str:
            raw = await client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )
            assert raw.parse().choices[0].message.content
            return raw.headers["x-understudy-served-by"]

        assert await served_by() == "local"
        w.candidate.health_status = 503
        await until(lambda: w.metric("understudy_candidate_healthy", candidate="local") == 0, 2)
        calls = w.chat_calls()
        assert [await served_by() for _ in range(4)] == ["openai"] * 4
        assert w.chat_calls() == calls  # straight to the primary: no failed attempt first
        fallbacks = w.metric(
            "understudy_fallbacks_total",
            route="chat.completions",
            upstream="local",
            reason="unhealthy",
        )
        assert fallbacks == 4
        w.candidate.health_status = 200
        await until(lambda: w.metric("understudy_candidate_healthy", candidate="local") == 1, 2)
        assert await served_by() == "local"
        await client.close()
        text = await w.metrics_text()
        assert 'understudy_candidate_healthy{candidate="local"} 1.0' in text
        assert 'understudy_candidate_probes_total{candidate="local",result="status 503"}' in text
