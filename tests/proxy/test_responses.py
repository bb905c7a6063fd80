"""``POST /v1/responses`` through the official SDK: shadowed, recorded and split like chat,
against a candidate that speaks the Responses API natively and one that speaks only Chat
Completions (reached through translation)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
from openai import OpenAI

from core import Role, Route
from tests.fakes._content import split_tokens
from tests.proxy.conftest import CLIENT_KEY, Rig, RigFactory

WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}
RECIPE_FORMAT = {
    "format": {
        "type": "json_schema",
        "name": "recipe",
        "schema": {
            "type": "object",
            "properties": {"title": {"type": "string"}, "minutes": {"type": "integer"}},
            "required": ["title", "minutes"],
            "additionalProperties": False,
        },
        "strict": True,
    }
}
# (the candidate's responses mode, whether its server has the Responses API)
SETUPS = [("native", True), ("translate", False), ("translate", True)]
SETUP_IDS = ["native", "translate-chat-only", "translate-native-server"]


async def rig_for(make_rig: RigFactory, responses: str, has_api: bool, **rollout: Any) -> Rig:
    rig = await make_rig(
        candidate={"responses": responses},
        rollout={"mode": "shadow", "candidate": "local", "shadow_rate": 1.0, **rollout},
    )
    rig.candidate.responses.enabled = has_api
    return rig


def candidate_calls(rig: Rig, mode: str) -> list[dict[str, Any]]:
    path = "/v1/responses" if mode == "native" else "/v1/chat/completions"
    return [r.body for r in rig.candidate.requests if r.path == path]


@pytest.mark.parametrize(("mode", "has_api"), SETUPS, ids=SETUP_IDS)
async def test_shadowed_and_recorded_not_streaming(
    make_rig: RigFactory, mode: str, has_api: bool
) -> None:
    rig = await rig_for(make_rig, mode, has_api)
    client = rig.client()
    answer = await client.responses.create(
        model="gpt-4o-mini", input="Tell me about sourdough.", instructions="Be brief."
    )
    assert answer.output_text and answer.status == "completed"
    [exchange] = await rig.exchanges(1)
    assert exchange.route is Route.RESPONSES and exchange.served_by == "openai"
    served, shadow = exchange.arm(Role.SERVED), exchange.arm(Role.SHADOW)
    assert served is not None and shadow is not None
    assert served.text == answer.output_text and served.finish_reason == "completed"
    assert answer.usage is not None
    assert served.usage.prompt_tokens == answer.usage.input_tokens
    assert served.usage.completion_tokens == answer.usage.output_tokens
    assert shadow.ok and shadow.text and shadow.model == "llama3.1:8b"
    assert shadow.usage.completion_tokens and shadow.finish_reason == "completed"
    [sent] = candidate_calls(rig, mode)
    assert sent["model"] == "llama3.1:8b"
    if mode == "native":
        assert sent["instructions"] == "Be brief." and sent["input"] == "Tell me about sourdough."
    else:
        assert sent["messages"] == [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Tell me about sourdough."},
        ]
    await client.close()


@pytest.mark.parametrize(("mode", "has_api"), SETUPS, ids=SETUP_IDS)
async def test_streamed_through_the_sdk_with_ttft_from_the_first_text_delta(
    make_rig: RigFactory, mode: str, has_api: bool
) -> None:
    rig = await rig_for(make_rig, mode, has_api)
    rig.primary.token_delay_s = rig.candidate.token_delay_s = 0.02
    rig.primary.first_byte_delay_s = 0.05
    client = rig.client()
    stream = await client.responses.create(
        model="gpt-4o-mini", input="Tell me about rye.", stream=True
    )
    events = [event async for event in stream]
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == events[-1].response.output_text  # type: ignore[union-attr]
    [exchange] = await rig.exchanges(1)
    served, shadow = exchange.arm(Role.SERVED), exchange.arm(Role.SHADOW)
    assert served is not None and shadow is not None
    assert exchange.stream and served.text == text and served.finish_reason == "completed"
    assert served.ttft_ms is not None and served.latency_ms is not None
    # The first text delta comes a token's delay after the opening events.
    assert 50 <= served.ttft_ms < served.latency_ms
    assert shadow.ok and shadow.text and shadow.usage.completion_tokens
    assert shadow.ttft_ms is not None and shadow.latency_ms is not None
    assert shadow.ttft_ms < shadow.latency_ms
    await client.close()


@pytest.mark.parametrize("stream", [False, True])
async def test_relayed_byte_for_byte(make_rig: RigFactory, stream: bool) -> None:
    rig = await rig_for(make_rig, "native", True)
    body = {"model": "gpt-4o-mini", "input": "Tell me about spelt.", "stream": stream}
    headers = {"Authorization": f"Bearer {CLIENT_KEY}"}
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{rig.base_url}/responses", json=body, headers=headers) as r:
            through_proxy = await r.read()
            assert r.headers["x-understudy-served-by"] == "openai"
        direct_url = f"{rig.servers[0].url}/v1/responses"
        async with session.post(direct_url, json=body, headers=headers) as r:
            direct = await r.read()
    assert through_proxy == direct
    assert (b"event: response.completed" in direct) is stream


@pytest.mark.parametrize(("mode", "has_api"), SETUPS, ids=SETUP_IDS)
async def test_sync_sdk_tool_call_json_schema_streamed_and_a_follow_up(
    make_rig: RigFactory, mode: str, has_api: bool
) -> None:
    rig = await rig_for(make_rig, mode, has_api)

    def conversation() -> tuple[Any, Any, str, Any]:
        with OpenAI(base_url=rig.base_url, api_key=CLIENT_KEY, max_retries=0) as client:
            call = client.responses.create(
                model="gpt-4o-mini", input="What's the weather in Paris?", tools=[WEATHER_TOOL]
            )
            recipe = client.responses.create(
                model="gpt-4o-mini", input="A bread recipe, please.", text=RECIPE_FORMAT
            )
            events = client.responses.create(
                model="gpt-4o-mini", input="Another one.", text=RECIPE_FORMAT, stream=True
            )
            streamed = "".join(e.delta for e in events if e.type == "response.output_text.delta")
            follow_up = client.responses.create(
                model="gpt-4o-mini", input="Shorter, please.", previous_response_id=recipe.id
            )
            return call, recipe, streamed, follow_up

    # The blocking client runs in a thread: this loop serves the proxy it calls.
    call, recipe, streamed, follow_up = await asyncio.to_thread(conversation)
    [item] = call.output
    assert item.type == "function_call" and item.name == "get_weather"
    assert set(json.loads(item.arguments)) == {"city"}
    assert set(json.loads(recipe.output_text)) == {"title", "minutes"}
    assert set(json.loads(streamed)) == {"title", "minutes"}
    assert follow_up.previous_response_id == recipe.id and follow_up.output_text
    tool_exchange, recipe_exchange, streamed_exchange, follow_up_exchange = await rig.exchanges(4)
    assert streamed_exchange.stream and follow_up_exchange.route is Route.RESPONSES
    for exchange in (streamed_exchange, follow_up_exchange):
        # The candidate shadowed the parent, so it holds it and shadows the follow-up too.
        for role in (Role.SERVED, Role.SHADOW):
            arm = exchange.arm(role)
            assert arm is not None and arm.ok, (role, arm)
    served = streamed_exchange.arm(Role.SERVED)
    assert served is not None and served.text == streamed
    for arm in (tool_exchange.arm(Role.SERVED), tool_exchange.arm(Role.SHADOW)):
        assert arm is not None and arm.ok
        [recorded] = arm.tool_calls
        assert recorded.name == "get_weather" and set(json.loads(recorded.arguments)) == {"city"}
    shadow = recipe_exchange.arm(Role.SHADOW)
    assert shadow is not None and shadow.text is not None
    assert set(json.loads(shadow.text)) == {"title", "minutes"}
    tool_sent, recipe_sent, _, follow_up_sent = candidate_calls(rig, mode)
    if mode == "translate":  # function tools and the schema in their Chat Completions form
        assert tool_sent["tools"] == [
            {
                "type": "function",
                "function": {k: v for k, v in WEATHER_TOOL.items() if k != "type"},
            }
        ]
        assert recipe_sent["response_format"]["type"] == "json_schema"
        assert recipe_sent["response_format"]["json_schema"]["name"] == "recipe"
        # The follow-up carries the whole conversation: the recipe's turn, then this one.
        assert [m["role"] for m in follow_up_sent["messages"]] == ["user", "assistant", "user"]
    else:
        assert follow_up_sent["previous_response_id"] != recipe.id  # the candidate's own twin


@pytest.mark.parametrize(("mode", "has_api"), SETUPS, ids=SETUP_IDS)
@pytest.mark.parametrize("stream", [False, True])
async def test_served_by_the_candidate_after_cutover(
    make_rig: RigFactory, mode: str, has_api: bool, stream: bool
) -> None:
    rig = await rig_for(make_rig, mode, has_api, mode="cutover", reverse_shadow_rate=0.0)
    client = rig.client()
    raw = await client.responses.with_raw_response.create(
        model="gpt-4o-mini",
        input="What's the weather in Oslo?",
        tools=[WEATHER_TOOL],
        max_output_tokens=64,
        stream=stream,
    )
    assert raw.headers["x-understudy-served-by"] == "local"
    if stream:
        events = [event async for event in raw.parse()]  # type: ignore[union-attr]
        assert events[-1].type == "response.completed"
        answer = events[-1].response  # type: ignore[union-attr]
        added = [e for e in events if e.type == "response.output_item.added"]
        assert added and added[0].item.type == "function_call"  # type: ignore[union-attr]
    else:
        answer = raw.parse()
    assert answer.output[0].type == "function_call" and answer.model == "llama3.1:8b"
    assert rig.primary.requests == []
    [exchange] = await rig.exchanges(1)
    served = exchange.arm(Role.SERVED)
    assert exchange.decision.served_is_candidate and served is not None and served.ok
    assert [c.name for c in served.tool_calls] == ["get_weather"]
    if mode == "translate":
        [sent] = candidate_calls(rig, mode)
        assert sent["max_tokens"] == 64 and sent.get("stream", False) is stream
    await client.close()


@pytest.mark.parametrize("stream", [False, True])
async def test_a_reasoning_models_thinking_is_recorded_apart(
    make_rig: RigFactory, stream: bool
) -> None:
    rig = await rig_for(make_rig, "native", True)
    for fake in (rig.primary, rig.candidate):
        fake.reasoning_field = "reasoning_content"
        fake.token_delay_s = 0.01
    client = rig.client()
    question = "Name the capital of France."
    answer = await client.responses.create(model="gpt-4o-mini", input=question, stream=stream)
    if stream:
        events = [event async for event in answer]  # type: ignore[union-attr]
        kinds = [e.type for e in events]
        assert kinds.index("response.reasoning_text.delta") < kinds.index(
            "response.output_text.delta"
        )
    [exchange] = await rig.exchanges(1)
    messages = [{"role": "user", "content": question}]
    for arm, fake, model in (
        (exchange.arm(Role.SERVED), rig.primary, "gpt-4o-mini"),
        (exchange.arm(Role.SHADOW), rig.candidate, "llama3.1:8b"),
    ):
        assert arm is not None and arm.text and arm.ok
        thought = fake.reasoning_text(model, messages)
        assert arm.reasoning_text == thought and thought not in arm.text
        assert arm.usage.reasoning_tokens == len(split_tokens(thought))
        assert arm.ttft_ms is not None and arm.ttft_any_ms is not None
        if stream:  # the answer's first token comes after the whole thought
            assert arm.ttft_any_ms < arm.ttft_ms
        else:
            assert arm.ttft_any_ms == arm.ttft_ms
    await client.close()


@pytest.mark.parametrize(("mode", "has_api"), SETUPS, ids=SETUP_IDS)
async def test_a_tool_calls_output_continues_the_conversation(
    make_rig: RigFactory, mode: str, has_api: bool
) -> None:
    rig = await rig_for(make_rig, mode, has_api, mode="cutover", reverse_shadow_rate=0.0)
    client = rig.client()
    call = await client.responses.create(
        model="gpt-4o-mini",
        input="What's the weather in Lima?",
        tools=[WEATHER_TOOL],
        temperature=0.2,
        top_p=0.9,
        reasoning={"effort": "low"},
    )
    [item] = call.output
    assert item.type == "function_call"
    answer = await client.responses.create(
        model="gpt-4o-mini",
        previous_response_id=call.id,
        input=[{"type": "function_call_output", "call_id": item.call_id, "output": "18 C, dry"}],
        tools=[WEATHER_TOOL],
    )
    assert answer.output_text and answer.previous_response_id == call.id
    assert rig.primary.requests == []
    first, second = candidate_calls(rig, mode)
    if mode == "native":
        assert second["previous_response_id"] == call.id
    else:  # the whole conversation, the call and its output in Chat Completions' form
        assert (first["temperature"], first["top_p"]) == (0.2, 0.9)
        assert first["reasoning_effort"] == "low"
        roles = [m["role"] for m in second["messages"]]
        assert roles == ["user", "assistant", "tool"]
        assert second["messages"][1]["tool_calls"][0]["id"] == item.call_id
        assert second["messages"][2] == {
            "role": "tool",
            "tool_call_id": item.call_id,
            "content": "18 C, dry",
        }
    _, follow_up = await rig.exchanges(2)
    served = follow_up.arm(Role.SERVED)
    assert served is not None and served.text == answer.output_text
    await client.close()
