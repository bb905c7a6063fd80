"""Reasoning models: the thinking is recorded apart from the answer, in every arm.

vLLM sends it as ``reasoning_content`` (newer: ``reasoning``) in the message and in
stream deltas; the fake OpenAI server does the same when its ``reasoning_field`` is set.
The client still gets the upstream's bytes unchanged.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import text

import migrations
from core import Role
from evaluation.cost import PER_MILLION, load_price_table
from storage.database import Database
from storage.inserts import insert_exchanges
from storage.privacy import PrivacyPolicy
from storage.replay import create_run, record_result, replay_pairs, select_exchanges
from storage.window import ExchangeWindow
from tests.evaluation.judge_server import JudgeBehaviour, running_judge
from tests.fakes._content import split_tokens
from tests.proxy.conftest import CANDIDATE_KEY, CLIENT_KEY, Rig, RigFactory, chat
from tests.storage.factories import full_exchange, served_arm
from tests.understudy.test_judge import judge_args, understudy

TOKEN_DELAY_S = 0.03


def thought_of(rig: Rig, body: dict[str, Any], model: str = "llama3.1:8b") -> str:
    """What the fake candidate thinks for this request (its model already mapped)."""
    return rig.candidate.reasoning_text(model, body["messages"])


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
async def test_vllm_reasoning_is_recorded_apart_from_the_answer(
    make_rig: RigFactory, field: str
) -> None:
    rig = await make_rig()
    rig.candidate.reasoning_field = field
    client = rig.client()
    body = chat("What is 17 times 23?")
    plain = await client.chat.completions.create(**body)
    stream = await client.chat.completions.create(**body, stream=True)
    streamed = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert streamed == plain.choices[0].message.content  # the primary answered, unchanged
    thought = thought_of(rig, body)
    answer = rig.candidate.reply_text("llama3.1:8b", body["messages"])
    for exchange in await rig.exchanges(2):
        shadow = exchange.arm(Role.SHADOW)
        assert shadow is not None and shadow.ok, shadow
        assert shadow.text == answer and "Thinking" not in shadow.text
        assert shadow.reasoning_text == thought
        thought_tokens = len(split_tokens(thought))
        answer_tokens = len(split_tokens(answer))
        assert shadow.usage.reasoning_tokens == thought_tokens
        assert shadow.usage.completion_tokens == thought_tokens + answer_tokens
        served = exchange.arm(Role.SERVED)
        assert served is not None and served.reasoning_text is None
        # OpenAI's own count says none were thought (a stream without usage says nothing).
        assert served.usage.reasoning_tokens == (None if exchange.stream else 0)
    await client.close()


async def test_two_times_to_first_token_apart_by_the_thinking(make_rig: RigFactory) -> None:
    rig = await make_rig(rollout={"mode": "cutover", "candidate": "local"})
    rig.candidate.reasoning_field = "reasoning_content"
    rig.candidate.token_delay_s = TOKEN_DELAY_S
    client = rig.client()
    body = chat("Plan a trip to Oslo.")
    stream = await client.chat.completions.create(**body, stream=True)
    thought = "".join(
        [
            (c.choices[0].delta.model_extra or {}).get("reasoning_content") or ""
            async for c in stream
            if c.choices
        ]
    )
    assert thought == thought_of(rig, body)  # the client gets the reasoning as sent
    plain = await client.chat.completions.create(**body)
    assert (plain.choices[0].message.model_extra or {})["reasoning_content"] == thought
    streamed, whole = await rig.exchanges(2)

    arm = streamed.arm(Role.SERVED)
    assert arm is not None and arm.ttft_ms is not None and arm.ttft_any_ms is not None
    # The fake thinks one token per delay before its first answer token.
    thinking_s = len(split_tokens(thought)) * TOKEN_DELAY_S
    gap_s = (arm.ttft_ms - arm.ttft_any_ms) / 1000
    figures = f"ttft_any {arm.ttft_any_ms:.1f} ms, ttft {arm.ttft_ms:.1f} ms, thinking {thinking_s}"
    assert arm.ttft_any_ms <= arm.ttft_ms, figures
    assert thinking_s * 0.9 <= gap_s <= thinking_s + 0.5, figures
    # Not streamed: both are the first byte, which comes with the whole answer.
    arm = whole.arm(Role.SERVED)
    assert arm is not None and arm.ttft_ms is not None
    assert arm.ttft_any_ms == arm.ttft_ms and arm.text and arm.reasoning_text == thought
    await client.close()


async def test_a_served_reasoning_answer_is_relayed_byte_for_byte(make_rig: RigFactory) -> None:
    rig = await make_rig(rollout={"mode": "cutover", "candidate": "local"})
    rig.candidate.reasoning_field = "reasoning"
    body = chat("Why is the sky blue?")
    async with aiohttp.ClientSession() as session:
        for stream in (False, True):
            request = {**body, "stream": stream}
            auth = {"Authorization": f"Bearer {CLIENT_KEY}"}
            async with session.post(
                f"{rig.base_url}/chat/completions", json=request, headers=auth
            ) as relayed:
                assert relayed.headers["x-understudy-served-by"] == "local"
                got = await relayed.read()
            direct_url = f"{rig.servers[1].url}/v1/chat/completions"
            mapped = {**request, "model": "llama3.1:8b"}
            key = {"Authorization": f"Bearer {CANDIDATE_KEY}"}
            async with session.post(direct_url, json=mapped, headers=key) as direct:
                sent = await direct.read()
            assert got == sent and b'"reasoning"' in got
    await rig.exchanges(2)


async def stored_observations(url: str, count: int, timeout_s: float = 10.0) -> list[Any]:
    deadline = time.monotonic() + timeout_s
    query = text(
        "SELECT role, text, reasoning_text, reasoning_tokens, completion_tokens, prompt_tokens,"
        " ttft_ms, ttft_any_ms FROM observations ORDER BY exchange_id, position"
    )
    while True:
        async with Database(url) as db, db.engine.connect() as conn:
            rows = list((await conn.execute(query)).all())
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        await asyncio.sleep(0.1)


async def test_stored_reasoning_is_redacted_kept_from_the_judge_and_priced(
    make_rig: RigFactory, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'understudy.db'}"
    await migrations.upgrade(url)
    rig = await make_rig(
        record=True,
        database_url=url,
        storage={"spill_dir": str(tmp_path / "spill"), "redact": ["email"]},
    )
    for fake in (rig.primary, rig.candidate):  # both arms think, as an o-series primary does
        fake.reasoning_field = "reasoning_content"
        fake.reasoning_template = "Thinking ({digest}): ask jane.doe@example.com to check."
    client = rig.client()
    body = chat("Name the capital of France.")
    await client.chat.completions.create(**body)
    stream = await client.chat.completions.create(
        **body, stream=True, stream_options={"include_usage": True}
    )
    async for _ in stream:
        pass
    await client.close()
    rows = await stored_observations(url, 4)
    assert sorted(r.role for r in rows) == ["served", "served", "shadow", "shadow"]
    thought = {
        "served": rig.primary.reasoning_text("gpt-4o-mini", body["messages"]),
        "shadow": rig.candidate.reasoning_text("llama3.1:8b", body["messages"]),
    }
    for row in rows:
        assert row.text and "Thinking" not in row.text and "example.com" not in row.text
        original = thought[row.role]
        assert row.reasoning_text == original.replace("jane.doe@example.com", "[redacted:email]")
        assert row.reasoning_tokens == len(split_tokens(original))
        assert row.ttft_any_ms is not None and row.ttft_ms is not None
        assert row.ttft_any_ms <= row.ttft_ms
    await rig.proxy.stop()  # the writer flushes on the way out

    # The judge compares answers only: no reasoning reaches its prompt.
    behaviour = JudgeBehaviour(preferred_word="candidate")
    async with running_judge(behaviour) as judge_url:
        code, out, err = await understudy(url, *judge_args(judge_url))
    assert code == 0, err
    assert behaviour.requests, out
    for request in behaviour.requests:
        prompt = json.dumps(request["messages"])
        assert "Name the capital of France." in prompt
        assert "answers request" in prompt  # the answers themselves are there
        assert "Thinking" not in prompt and "redacted" not in prompt

    # Cost prices every completion token, the reasoning ones included.
    code, out, err = await understudy(
        url,
        "report",
        "--format",
        "json",
        "--primary-model",
        "gpt-4o-mini",
        "--candidate-model",
        "gpt-4o-mini",
        key=None,
    )
    assert code == 0, err
    cost = json.loads(out)["cost"]
    price = load_price_table().price_for("gpt-4o-mini")
    assert price is not None
    served = [r for r in rows if r.role == "served"]
    assert all(r.reasoning_tokens > 0 for r in served)
    per_request = [
        (r.prompt_tokens * price.input + r.completion_tokens * price.output) / PER_MILLION
        for r in served
    ]
    expected = sum(per_request) / len(per_request)
    assert cost["primary_usd_per_request"] == pytest.approx(expected)
    answer_only = [
        (r.completion_tokens - r.reasoning_tokens) * price.output / PER_MILLION for r in served
    ]
    assert expected - sum(answer_only) / len(answer_only) > 0


def test_reasoning_is_kept_or_dropped_with_the_answer() -> None:
    exchange = full_exchange(observations=(served_arm(reasoning_text="Mail sk-abc123def456ghi."),))
    kept = PrivacyPolicy.create(store_responses=True).apply(exchange).observations[0]
    assert kept.reasoning_text == "Mail [redacted:key]."
    dropped = PrivacyPolicy.create(store_responses=False).apply(exchange).observations[0]
    assert dropped.text is None and dropped.reasoning_text is None
    assert dropped.ttft_any_ms == exchange.observations[0].ttft_any_ms  # timings stay


async def test_a_replayed_answer_keeps_its_reasoning_apart(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'understudy.db'}"
    await migrations.upgrade(url)
    original = full_exchange(request={"model": "gpt-4o-mini", "messages": [{"role": "user"}]})
    replayed = served_arm(
        role=Role.SHADOW, text="42", reasoning_text="Six times seven.", ttft_any_ms=12.5
    )
    async with Database(url) as db:
        async with db.engine.begin() as conn:
            await insert_exchanges(conn, [original])
        selection = await select_exchanges(db, ExchangeWindow())
        run_id = await create_run(
            db,
            candidate="local",
            target="ollama http://127.0.0.1/",
            selection_key="k",
            parameters={},
            selection=selection,
        )
        assert await record_result(db, run_id, original, replayed)
        (pair,) = await replay_pairs(db, run_id, after=None, limit=10)
    assert pair.replayed.text == "42" and pair.replayed.reasoning_text == "Six times seven."
    assert pair.replayed.ttft_any_ms == 12.5
    assert pair.replayed.usage.reasoning_tokens == replayed.usage.reasoning_tokens == 5
