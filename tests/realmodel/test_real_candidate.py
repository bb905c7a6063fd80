"""Understudy in front of a real model: shadowed, streaming and not, and serving after cutover,
through the official SDK; the real model's text, usage and time to first token are recorded."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from openai import AsyncOpenAI
from prometheus_client import CollectorRegistry

from core import Exchange, Role
from storage.database import Database
from storage.repository import count_exchanges, list_exchanges
from tests.fakes import FakeOpenAI, start_server
from tests.realmodel.conftest import LlamaServer
from understudy.server import start_site
from understudy.settings import load_settings
from understudy.wiring import build_app

pytestmark = pytest.mark.slow

CANDIDATE = "llama"
QUESTION = [{"role": "user", "content": "Name one colour of the rainbow."}]
# Small answers keep a CPU-only model quick; temperature 0 keeps them steady.
ASK: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "messages": QUESTION,
    "max_tokens": 24,
    "temperature": 0,
}


@asynccontextmanager
async def proxy(
    llama: LlamaServer, tmp_path: Path, **rollout: Any
) -> AsyncIterator[tuple[AsyncOpenAI, Callable[[int], Any]]]:
    """The proxy on SQLite, the fake OpenAI as primary and the real model as candidate."""
    primary = await start_server(FakeOpenAI(persona="openai").app)
    settings = load_settings(
        primary={"base_url": f"{primary.url}/v1"},
        candidates=[
            {
                "name": CANDIDATE,
                "base_url": llama.url,
                "model_map": {"gpt-4o-mini": llama.model},
                "timeout_s": 120,
            }
        ],
        rollout={"candidate": CANDIDATE, **rollout},
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'understudy.db'}",
        storage={"spill_dir": str(tmp_path / "spill")},
        shutdown_grace_s=30,
    )
    site = await start_site(build_app(settings, registry=CollectorRegistry()), "127.0.0.1", 0)
    client = AsyncOpenAI(base_url=f"{site.url}/v1", api_key="sk-client", max_retries=0)

    async def recorded(n: int, limit_s: float = 120.0) -> list[Exchange]:
        deadline = time.monotonic() + limit_s
        async with Database(settings.database_url) as db:
            while await count_exchanges(db) < n:
                assert time.monotonic() < deadline, f"fewer than {n} exchanges recorded"
                await asyncio.sleep(0.2)
            return await list_exchanges(db, limit=None)

    try:
        yield client, recorded
    finally:
        await client.close()
        await site.stop()
        await primary.close()


def real_answer(exchange: Exchange, role: Role) -> None:
    """The candidate's arm holds what a real model produced, measured."""
    arm = exchange.arm(role)
    assert arm is not None and arm.upstream == CANDIDATE, exchange.observations
    assert arm.ok, (arm.status, arm.error_kind)
    assert arm.text and arm.text.strip()
    assert arm.model == "smollm2-135m"
    assert arm.ttft_ms is not None and arm.latency_ms is not None
    assert 0 < arm.ttft_ms <= arm.latency_ms
    if exchange.stream and arm.usage.completion_tokens is None:
        # llama-cpp-python's server sends no usage in a stream, whatever stream_options ask:
        # the tokens of a streamed answer from it are unknown, and recorded as such.
        assert arm.usage.prompt_tokens is None
        return
    assert arm.usage.completion_tokens and 0 < arm.usage.completion_tokens <= 24
    assert arm.usage.prompt_tokens and arm.usage.prompt_tokens > 0


async def test_a_real_model_shadowed_streaming_and_not(
    llama_server: LlamaServer, tmp_path: Path
) -> None:
    async with proxy(llama_server, tmp_path, mode="shadow") as (client, recorded):
        plain = await client.chat.completions.create(**ASK)
        chunks = await client.chat.completions.create(**ASK, stream=True)
        streamed = "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])
        exchanges = await recorded(2)

    # The app saw OpenAI's answers only.
    assert (plain.choices[0].message.content or "").startswith("openai:")
    assert streamed.startswith("openai:")
    assert sorted(e.stream for e in exchanges) == [False, True]
    for exchange in exchanges:
        real_answer(exchange, Role.SHADOW)


async def test_a_real_model_serves_after_cutover_through_the_sdk_streaming(
    llama_server: LlamaServer, tmp_path: Path
) -> None:
    async with proxy(
        llama_server, tmp_path, mode="cutover", percent=100, reverse_shadow_rate=0
    ) as (client, recorded):
        raw = await client.chat.completions.with_raw_response.create(**ASK, stream=True)
        assert raw.headers["x-understudy-served-by"] == CANDIDATE
        chunks = raw.parse()
        streamed = "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])
        (exchange,) = await recorded(1)

    assert streamed.strip() and not streamed.startswith("openai:")
    assert exchange.served_by == CANDIDATE and not exchange.fallback
    real_answer(exchange, Role.SERVED)
    served = exchange.arm(Role.SERVED)
    assert served is not None and served.text == streamed  # recorded as relayed
