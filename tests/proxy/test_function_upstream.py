"""The proxy depends on the upstream protocol only: upstreams answered in-process by
functions (as httpx's MockTransport does) serve, shadow, fail over and pass through exactly
as HTTP adapters do, with no socket behind them."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

import pytest
from openai import AsyncOpenAI
from prometheus_client import CollectorRegistry

from core import (
    ErrorKind,
    Exchange,
    FlagState,
    Role,
    RolloutMode,
    Route,
    UpstreamError,
    UpstreamRequest,
    UpstreamResponse,
)
from core.memory_sink import InMemorySink
from proxy.app import create_proxy_app
from proxy.config import Limits, UpstreamConfig
from proxy.upstream_set import UpstreamSet
from proxy.upstreams.function import ChunkedResponse, FunctionUpstream
from proxy.upstreams.port import ForwardRequest
from understudy.server import RunningSite, start_site


def completion(model: str, text: str) -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
        }
    ).encode()


def stream(model: str, words: list[str]) -> list[bytes]:
    def line(delta: dict[str, str], finish: str | None = None) -> bytes:
        chunk = {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return f"data: {json.dumps(chunk)}\n\n".encode()

    return [
        line({"role": "assistant"}),
        *(line({"content": w}) for w in words),
        line({}, "stop"),
        b"data: [DONE]\n\n",
    ]


class Answering:
    """A function upstream's handler: answers as ``persona`` and remembers every request."""

    def __init__(self, persona: str) -> None:
        self.persona = persona
        self.seen: list[UpstreamRequest] = []
        self.failure: ErrorKind | None = None

    async def __call__(self, request: UpstreamRequest) -> UpstreamResponse:
        self.seen.append(request)
        if self.failure is not None:
            raise UpstreamError(self.failure, f"{self.persona}: {self.failure.value}")
        model = str(request.body["model"])
        if request.stream:
            sse = {"Content-Type": "text/event-stream"}
            return ChunkedResponse(200, stream(model, [self.persona, " says", " hi"]), sse)
        return ChunkedResponse(200, [completion(model, f"{self.persona} says hi")])


async def recorded(sink: InMemorySink, n: int, limit_s: float = 5.0) -> list[Exchange]:
    deadline = time.monotonic() + limit_s
    while len(sink.exchanges) < n:
        assert time.monotonic() < deadline, f"{len(sink.exchanges)} of {n} exchanges recorded"
        await asyncio.sleep(0.01)
    return list(sink.exchanges)


class Flags:
    def __init__(self, state: FlagState) -> None:
        self.state = state

    def current(self, route: Route) -> FlagState:
        return self.state


@dataclass
class Rig:
    primary: Answering
    candidate: Answering
    flags: Flags
    sink: InMemorySink
    site: RunningSite
    forwarded: list[ForwardRequest]

    def client(self) -> AsyncOpenAI:
        return AsyncOpenAI(base_url=f"{self.site.url}/v1", api_key="sk-client", max_retries=0)


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    primary, candidate = Answering("openai"), Answering("local")
    forwarded: list[ForwardRequest] = []

    async def models(request: ForwardRequest) -> UpstreamResponse:
        forwarded.append(request)
        return ChunkedResponse(200, [b'{"object": "list", "data": []}'])

    primary_config = UpstreamConfig("openai", "http://primary.invalid/v1", api_key="sk-operator")
    candidate_config = UpstreamConfig(
        "local", "http://candidate.invalid/v1", model_map={"gpt-4o-mini": "llama3.1:8b"}
    )
    upstreams = UpstreamSet(
        primary=FunctionUpstream(primary_config, primary, models),
        noise=FunctionUpstream(replace(primary_config, max_concurrency=4), primary),
        candidates={"local": FunctionUpstream(candidate_config, candidate)},
    )
    flags = Flags(FlagState("k", RolloutMode.SHADOW, "local", 0.0, 1.0, 0.0))
    sink = InMemorySink()
    app = create_proxy_app(
        upstreams=upstreams,
        flags=flags,
        sink=sink,
        registry=CollectorRegistry(),
        limits=Limits(),
        redact=lambda text: text,
    )
    site = await start_site(app, "127.0.0.1", 0)
    assert all(u.started for u in upstreams if isinstance(u, FunctionUpstream))
    yield Rig(primary, candidate, flags, sink, site, forwarded)
    await site.stop()
    assert not any(u.started for u in upstreams if isinstance(u, FunctionUpstream))


async def test_shadow_through_function_upstreams(rig: Rig) -> None:
    client = rig.client()
    answer = await client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    chunks = await client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    streamed = "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])
    await client.close()

    assert answer.choices[0].message.content == "openai says hi"
    assert streamed == "openai says hi"
    exchanges = await recorded(rig.sink, 2)
    for e in exchanges:
        assert {o.role: (o.upstream, o.text) for o in e.observations} == {
            Role.SERVED: ("openai", "openai says hi"),
            Role.SHADOW: ("local", "local says hi"),
        }
    assert [r.body["model"] for r in rig.candidate.seen] == ["llama3.1:8b"] * 2
    # Only the shadow's stream asks for usage; the client's request reached the primary as sent.
    assert rig.candidate.seen[1].body["stream_options"] == {"include_usage": True}
    assert "stream_options" not in rig.primary.seen[1].body


async def test_a_failing_function_candidate_falls_back_and_is_recorded(rig: Rig) -> None:
    rig.flags.state = replace(rig.flags.state, mode=RolloutMode.CUTOVER, reverse_shadow_rate=0.0)
    rig.candidate.failure = ErrorKind.TIMEOUT
    client = rig.client()
    answer = await client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    await client.close()

    assert answer.choices[0].message.content == "openai says hi"
    (exchange,) = await recorded(rig.sink, 1)
    assert exchange.fallback and exchange.served_by == "openai"
    failed = exchange.arm(Role.FAILED_OVER)
    assert failed is not None and failed.error_kind is ErrorKind.TIMEOUT


async def test_the_pass_through_forwards_to_the_function_primary(rig: Rig) -> None:
    client = rig.client()
    listed = await client.models.list()
    await client.close()

    assert listed.data == []
    (call,) = rig.forwarded
    assert (call.method, call.path, call.query) == ("GET", "models", "")
    assert (
        call.headers["Authorization"] == "Bearer sk-operator"
    )  # the operator's key, not the app's
