"""Replay of stored traffic against a real model: twenty recorded requests re-sent to a
llama.cpp-based server through `understudy replay`, each answer recorded beside its original."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path

import pytest

from storage.database import Database
from storage.replay import ReplayPair, list_runs, replay_pairs
from tests.realmodel.conftest import LlamaServer
from tests.replay.stored import WITH_PROMPTS, seed, stored_exchange, understudy

pytestmark = pytest.mark.slow


def test_twenty_stored_requests_replayed_against_the_real_model(
    llama_server: LlamaServer, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'understudy.db'}"
    # Short answers keep a CPU-only model quick; the rest of each request is as recorded.
    stored = [stored_exchange(i) for i in range(WITH_PROMPTS)]
    seed(url, [replace(e, request={**e.request, "max_tokens": 16}) for e in stored])

    done = understudy(
        url,
        "replay",
        "--candidate",
        "smollm2",
        "--base-url",
        llama_server.url,
        "--kind",
        "llamacpp",
        "--model-map",
        json.dumps({"gpt-4o-mini": llama_server.model}),
        "--concurrency",
        "2",
    )
    assert done.returncode == 0, done.stderr

    async def results() -> tuple[int, list[ReplayPair]]:
        async with Database(url) as db:
            (run,) = await list_runs(db)
            return run.id, list(await replay_pairs(db, run.id, after=None, limit=100))

    run_id, pairs = asyncio.run(results())
    assert len(pairs) == WITH_PROMPTS
    assert {p.original.id for p in pairs} == {e.id for e in stored}
    for pair in pairs:
        answer = pair.replayed
        assert answer.ok and answer.text and answer.text.strip(), answer
        assert answer.model == llama_server.model
        assert answer.latency_ms and answer.latency_ms > 0

    listed = understudy(url, "replay", "list")
    assert listed.returncode == 0 and str(run_id) in listed.stdout
