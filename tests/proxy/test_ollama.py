"""An Ollama candidate, spoken to in its native API and translated to OpenAI shapes."""

from __future__ import annotations

import openai
import pytest

from core import Role, Route
from tests.fakes import Fault
from tests.proxy.conftest import RigFactory, chat


async def test_shadow_to_ollama_uses_native_chat_with_mapped_model(make_rig: RigFactory) -> None:
    rig = await make_rig(candidate_kind="ollama")
    client = rig.client()
    for stream in (False, True):
        answer = await client.chat.completions.create(
            **chat(temperature=0.2, max_tokens=50), stream=stream
        )
        if stream:
            async for _ in answer:  # type: ignore[union-attr]
                pass
    exchanges = await rig.exchanges(2)
    requests = rig.ollama.requests_to("/api/chat")
    assert [r.body["model"] for r in requests] == ["llama3.1:8b", "llama3.1:8b"]
    assert [r.body["stream"] for r in requests] == [False, True]
    assert requests[0].body["options"] == {"temperature": 0.2, "num_predict": 50}
    assert requests[0].body["messages"] == [{"role": "user", "content": "Tell me about sourdough."}]
    for exchange in exchanges:
        shadow = exchange.arm(Role.SHADOW)
        assert shadow is not None and shadow.ok, shadow
        assert shadow.text and shadow.usage.completion_tokens
        assert shadow.finish_reason == "stop"
    assert rig.ollama.management_calls == []
    await client.close()


async def test_ollama_serving_split_traffic_looks_like_openai(make_rig: RigFactory) -> None:
    rig = await make_rig(
        candidate_kind="ollama",
        rollout={"mode": "cutover", "candidate": "local", "allow_embeddings_split": True},
    )
    client = rig.client()
    answer = await client.chat.completions.create(**chat())
    assert answer.object == "chat.completion" and answer.choices[0].message.content
    assert answer.usage is not None and answer.usage.completion_tokens > 0
    stream = await client.chat.completions.create(
        **chat(), stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == answer.choices[0].message.content
    assert chunks[-1].usage is not None
    completion = await client.completions.create(model="gpt-4o-mini", prompt="Once")
    assert completion.choices[0].text
    embedding = await client.embeddings.create(model="gpt-4o-mini", input=["a", "b"])
    assert len(embedding.data) == 2 and len(embedding.data[0].embedding) == 384
    exchanges = await rig.exchanges(4)
    assert {e.route for e in exchanges} == {Route.CHAT, Route.COMPLETIONS, Route.EMBEDDINGS}
    assert all(e.served_by == "local" for e in exchanges)
    await client.close()


async def test_ollama_tool_calls_become_openai_tool_calls(make_rig: RigFactory) -> None:
    rig = await make_rig(candidate_kind="ollama", rollout={"mode": "cutover", "candidate": "local"})
    client = rig.client()
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    answer = await client.chat.completions.create(**chat("Weather in Oslo?"), tools=tools)
    call = answer.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "get_weather" and call.function.arguments.startswith("{")
    assert answer.choices[0].finish_reason == "tool_calls"
    await client.close()


async def test_ollama_failures_fall_back_and_are_recorded(make_rig: RigFactory) -> None:
    rig = await make_rig(candidate_kind="ollama", rollout={"mode": "cutover", "candidate": "local"})
    client = rig.client()
    for fault in (Fault.HTTP_500, Fault.GARBAGE_JSON):
        rig.ollama.fault = fault
        raw = await client.chat.completions.with_raw_response.create(**chat())
        assert raw.headers["x-understudy-served-by"] == "openai"
    rig.ollama.fault = Fault.CUT_STREAM
    stream = await client.chat.completions.create(**chat(), stream=True)
    with pytest.raises(
        openai.APIConnectionError
    ):  # cut after the first byte: the client sees the cut
        async for _ in stream:
            pass
    exchanges = await rig.exchanges(3)
    assert [e.fallback for e in exchanges] == [True, True, False]
    assert exchanges[2].arm(Role.SERVED).error_kind is not None  # type: ignore[union-attr]
    await client.close()
