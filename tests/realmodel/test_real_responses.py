"""The Responses API in front of a real model that speaks only Chat Completions
(llama-cpp-python's server, kind ``llamacpp``, reached through translation): served after
cutover streaming and not, a follow-up continuing the conversation, each recorded."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from openai import AsyncOpenAI
from prometheus_client import CollectorRegistry

from core import Role
from storage.database import Database
from storage.repository import count_exchanges, list_exchanges
from tests.fakes import FakeOpenAI, start_server
from tests.realmodel.conftest import LlamaServer
from understudy.server import start_site
from understudy.settings import load_settings
from understudy.wiring import build_app

pytestmark = pytest.mark.slow


async def test_a_real_chat_only_model_answers_the_responses_api(
    llama_server: LlamaServer, tmp_path: Path
) -> None:
    primary = await start_server(FakeOpenAI(persona="openai").app)
    settings = load_settings(
        primary={"base_url": f"{primary.url}/v1"},
        candidates=[
            {
                "name": "llama",
                "kind": "llamacpp",  # translate, by kind
                "base_url": llama_server.url,
                "model_map": {"gpt-4o-mini": llama_server.model},
                "timeout_s": 120,
            }
        ],
        rollout={"candidate": "llama", "mode": "cutover", "reverse_shadow_rate": 0},
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'understudy.db'}",
        storage={"spill_dir": str(tmp_path / "spill")},
        shutdown_grace_s=30,
    )
    site = await start_site(build_app(settings, registry=CollectorRegistry()), "127.0.0.1", 0)
    client = AsyncOpenAI(base_url=f"{site.url}/v1", api_key="sk-client", max_retries=0)
    ask = {"model": "gpt-4o-mini", "max_output_tokens": 24, "temperature": 0}
    try:
        first = await client.responses.create(
            **ask, instructions="Answer briefly.", input="Name one colour of the rainbow."
        )
        assert first.output_text.strip() and first.model == llama_server.model
        stream = await client.responses.create(
            **ask, input="Name another one.", previous_response_id=first.id, stream=True
        )
        events = [event async for event in stream]
        assert events[0].type == "response.created"
        assert events[-1].type in ("response.completed", "response.incomplete")
        streamed = "".join(e.delta for e in events if e.type == "response.output_text.delta")
        assert streamed.strip()
        async with Database(settings.database_url) as db:
            deadline = time.monotonic() + 60
            while await count_exchanges(db) < 2:
                assert time.monotonic() < deadline, "the exchanges were not recorded"
                await asyncio.sleep(0.2)
            exchanges = await list_exchanges(db, limit=None)
    finally:
        await client.close()
        await site.stop()
        await primary.close()
    for exchange in exchanges:
        served = exchange.arm(Role.SERVED)
        assert exchange.served_by == "llama" and served is not None and served.ok
        assert served.text and served.text.strip()
        assert served.ttft_ms is not None and served.latency_ms is not None
        assert 0 < served.ttft_ms <= served.latency_ms
        assert served.finish_reason in ("completed", "max_output_tokens")
    assert {e.stream for e in exchanges} == {False, True}
    plain = next(e for e in exchanges if not e.stream).arm(Role.SERVED)
    assert plain is not None and plain.text == first.output_text
    assert plain.usage.completion_tokens and plain.usage.completion_tokens <= 24
