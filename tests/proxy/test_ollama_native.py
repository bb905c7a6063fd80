"""Ollama's native API as its documentation describes it: options, format, keep_alive, think,
tool calls, usage, thinking and errors, checked on what the fake Ollama received and on
what an OpenAI SDK client gets back through the proxy."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import openai
import pytest

from core import ConfigError, ErrorKind, Role, Route, UpstreamRequest
from proxy.config import UpstreamConfig
from proxy.upstreams import build_upstream
from proxy.upstreams import ollama_translate as tr
from tests.fakes import FakeOllama, Fault, start_server
from tests.fakes._content import split_tokens
from tests.proxy.conftest import Rig, RigFactory, chat
from understudy.settings import load_settings

MODEL = "llama3.1:8b"  # what the rig maps gpt-4o-mini to
TOKEN_DELAY_S = 0.03
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                "required": ["city"],
            },
        },
    }
]
SCHEMA = {
    "type": "object",
    "properties": {"age": {"type": "integer"}, "available": {"type": "boolean"}},
    "required": ["age", "available"],
}


def native_bodies(rig: Rig, path: str = "/api/chat") -> list[dict[str, Any]]:
    return [r.body for r in rig.ollama.requests_to(path)]


async def native_answer(rig: Rig, body: dict[str, Any]) -> dict[str, Any]:
    """What Ollama itself answers to a native request the proxy sent, asked again unstreamed."""
    async with aiohttp.ClientSession() as session:
        url = f"{rig.servers[2].url}/api/chat"
        async with session.post(url, json={**body, "stream": False}) as answer:
            result: dict[str, Any] = await answer.json(content_type=None)
            return result


async def test_options_format_keep_alive_and_think_reach_ollama(make_rig: RigFactory) -> None:
    rig = await make_rig(candidate_kind="ollama", candidate={"keep_alive": "10m", "think": "low"})
    rig.ollama.thinks = True
    client = rig.client()
    await client.chat.completions.create(
        **chat(),
        temperature=0.3,
        top_p=0.9,
        seed=7,
        stop="\n\n",
        max_completion_tokens=40,
        response_format={"type": "json_object"},
    )
    await client.chat.completions.create(
        **chat(),
        max_tokens=12,
        stop=["END", "STOP"],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "person", "schema": SCHEMA},
        },
        reasoning_effort="high",
    )
    await client.chat.completions.create(**chat(), reasoning_effort="none")
    # Ollama's own fields, sent by the client, win over the candidate's settings.
    await client.chat.completions.create(**chat(), extra_body={"think": False, "keep_alive": -1})
    await client.completions.create(model="gpt-4o-mini", prompt="Once", max_tokens=5)
    await client.embeddings.create(model="gpt-4o-mini", input="a")
    exchanges = await rig.exchanges(6)

    json_mode, schema, no_think, explicit = native_bodies(rig)
    assert json_mode["options"] == {
        "temperature": 0.3,
        "top_p": 0.9,
        "seed": 7,
        "stop": ["\n\n"],
        "num_predict": 40,
    }
    assert json_mode["format"] == "json" and json_mode["keep_alive"] == "10m"
    assert json_mode["think"] == "low"  # the candidate's setting: the request set none
    assert schema["options"] == {"stop": ["END", "STOP"], "num_predict": 12}
    assert schema["format"] == SCHEMA and schema["think"] == "high"
    assert no_think["think"] is False and "format" not in no_think
    assert explicit["think"] is False and explicit["keep_alive"] == -1
    (generate,) = native_bodies(rig, "/api/generate")
    assert generate["options"] == {"num_predict": 5} and generate["keep_alive"] == "10m"
    assert "think" not in generate  # a raw prompt has no template to think in
    (embed,) = native_bodies(rig, "/api/embed")
    assert embed == {"model": MODEL, "keep_alive": "10m", "input": "a"}

    for exchange in exchanges:
        shadow = exchange.arm(Role.SHADOW)
        assert shadow is not None and shadow.ok, shadow
    answers = {e.request.get("reasoning_effort"): e.arm(Role.SHADOW) for e in exchanges}
    assert json.loads(answers["high"].text or "").keys() == {"age", "available"}  # type: ignore[union-attr]
    assert answers["high"].reasoning_text  # type: ignore[union-attr]
    assert answers["none"].reasoning_text is None  # type: ignore[union-attr]
    await client.close()


def test_ollama_options_belong_to_ollama_candidates() -> None:
    candidate = {"name": "local", "base_url": "http://127.0.0.1:1/v1", "keep_alive": "5m"}
    with pytest.raises(ConfigError, match="Ollama options"):
        load_settings(candidates=[candidate])
    load_settings(candidates=[{**candidate, "kind": "ollama", "think": True}])


def test_ollama_candidates_translate_the_responses_api() -> None:
    candidate = {"name": "local", "base_url": "http://127.0.0.1:1", "kind": "ollama"}
    with pytest.raises(ConfigError, match="always translated"):
        load_settings(candidates=[{**candidate, "responses": "native"}])
    load_settings(candidates=[{**candidate, "responses": "translate"}])


@pytest.mark.parametrize("stream", [False, True])
async def test_tool_calls_come_back_in_chat_completions_shape(
    make_rig: RigFactory, stream: bool
) -> None:
    rig = await make_rig(candidate_kind="ollama", rollout={"mode": "cutover", "candidate": "local"})
    client = rig.client()
    body = chat("What is the weather in Oslo?", tools=TOOLS)
    if stream:
        chunks = [c async for c in await client.chat.completions.create(**body, stream=True)]
        assert chunks[0].choices[0].delta.role == "assistant"
        calls: dict[int, dict[str, str]] = {}
        for chunk in chunks:
            for call in chunk.choices[0].delta.tool_calls or ():
                slot = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                slot["id"] += call.id or ""
                slot["name"] += (call.function and call.function.name) or ""
                slot["arguments"] += (call.function and call.function.arguments) or ""
        finish = chunks[-1].choices[0].finish_reason
        got = [calls[i] for i in sorted(calls)]
    else:
        answer = await client.chat.completions.create(**body)
        finish = answer.choices[0].finish_reason
        message = answer.choices[0].message
        assert message.content is None
        got = [
            {"id": c.id, "name": c.function.name, "arguments": c.function.arguments}
            for c in message.tool_calls or ()
        ]
    assert finish == "tool_calls"

    native = (await native_answer(rig, native_bodies(rig)[0]))["message"]["tool_calls"]
    assert native[0]["id"].startswith("call_")  # Ollama names its calls: the id is kept
    assert isinstance(native[0]["function"]["arguments"], dict)  # an object, not JSON text
    assert [c["id"] for c in got] == [c["id"] for c in native]
    assert [c["name"] for c in got] == ["get_weather"]
    assert [json.loads(c["arguments"]) for c in got] == [c["function"]["arguments"] for c in native]

    (exchange,) = await rig.exchanges(1)
    served = exchange.arm(Role.SERVED)
    assert served is not None and served.ok and served.finish_reason == "tool_calls"
    assert [(c.id, c.name, c.arguments) for c in served.tool_calls] == [
        (c["id"], c["name"], c["arguments"]) for c in got
    ]
    await client.close()


def test_tool_calls_without_ids_get_ids_and_stream_lines_keep_counting() -> None:
    def line(name: str, done: bool = False) -> dict[str, Any]:
        call = {"function": {"name": name, "arguments": {"city": "Oslo"}}}
        return {"message": {"role": "assistant", "content": "", "tool_calls": [call]}, "done": done}

    whole = tr.completion_from_native(Route.CHAT, line("a"), MODEL, "chatcmpl-1")
    (call,) = whole["choices"][0]["message"]["tool_calls"]
    assert call["id"].startswith("call_") and call["function"]["arguments"] == '{"city": "Oslo"}'
    first = tr.chunks_from_native(
        Route.CHAT, line("a"), MODEL, "c", first=True, include_usage=False, saw_tools=True
    )
    second = tr.chunks_from_native(
        Route.CHAT,
        line("b", done=True),
        MODEL,
        "c",
        first=False,
        include_usage=False,
        saw_tools=True,
        tools_before=1,
    )
    indices = [
        call["index"]
        for chunk in first + second
        for call in chunk["choices"][0]["delta"].get("tool_calls", ())
    ]
    assert indices == [0, 1]  # two calls on two lines stay two calls
    assert second[-1]["choices"][0]["finish_reason"] == "tool_calls"


async def test_usage_comes_from_prompt_eval_count_and_eval_count(make_rig: RigFactory) -> None:
    rig = await make_rig(candidate_kind="ollama", rollout={"mode": "cutover", "candidate": "local"})
    client = rig.client()
    answer = await client.chat.completions.create(**chat())
    stream = await client.chat.completions.create(
        **chat(), stream=True, stream_options={"include_usage": True}
    )
    last = [c async for c in stream][-1]
    native = await native_answer(rig, native_bodies(rig)[0])
    for usage in (answer.usage, last.usage):
        assert usage is not None
        assert usage.prompt_tokens == native["prompt_eval_count"] > 0
        assert usage.completion_tokens == native["eval_count"] > 0
        assert usage.total_tokens == native["prompt_eval_count"] + native["eval_count"]
    await client.close()


async def ollama_answer(
    base_url: str, body: dict[str, Any], stream: bool = False
) -> tuple[int, dict[str, Any]]:
    """Call the Ollama adapter itself (as the proxy, replay and probes do): status and body."""
    upstream = build_upstream(UpstreamConfig(name="local", base_url=base_url, kind="ollama"))
    await upstream.start()
    try:
        response = await upstream.send(UpstreamRequest(Route.CHAT, body, stream, {}))
        raw = b"".join([chunk async for chunk in response])
        await response.aclose()
    finally:
        await upstream.close()
    return response.status, json.loads(raw)


async def test_ollama_errors_become_openai_errors_with_their_status() -> None:
    fake = FakeOllama()
    server = await start_server(fake.app)
    fake.pulled_only = True
    body = {"model": "llama3.2:latest", "messages": [{"role": "user", "content": "hi"}]}
    try:
        status, error = await ollama_answer(server.url, {**body, "model": "nope:1b"})
        assert status == 404
        assert error == {
            "error": {
                "message": 'model "nope:1b" not found, try pulling it first',
                "type": "invalid_request_error",
                "param": None,
                "code": "model_not_found",
            }
        }
        status, error = await ollama_answer(server.url, {**body, "think": True}, stream=True)
        assert status == 400 and error["error"]["type"] == "invalid_request_error"
        assert error["error"]["message"] == '"llama3.2:latest" does not support thinking'
        fake.fault = Fault.HTTP_500
        status, error = await ollama_answer(server.url, body)
        assert status == 500 and error["error"]["type"] == "server_error"
        fake.fault = Fault.HTTP_429
        status, error = await ollama_answer(server.url, body)
        assert status == 429 and error["error"]["code"] == "rate_limit_exceeded"
    finally:
        await server.close()


async def test_a_missing_model_is_recorded_as_the_candidates_404(make_rig: RigFactory) -> None:
    rig = await make_rig(candidate_kind="ollama")
    rig.ollama.pulled_only = True  # llama3.1:8b is not pulled
    client = rig.client()
    answer = await client.chat.completions.create(**chat())
    assert answer.choices[0].message.content  # the primary answered
    (exchange,) = await rig.exchanges(1)
    shadow = exchange.arm(Role.SHADOW)
    assert shadow is not None
    assert shadow.status == 404 and shadow.error_kind is ErrorKind.HTTP_STATUS
    await client.close()


async def test_thinking_becomes_reasoning_content_and_is_timed(make_rig: RigFactory) -> None:
    rig = await make_rig(candidate_kind="ollama", rollout={"mode": "cutover", "candidate": "local"})
    rig.ollama.thinks = True
    rig.ollama.token_delay_s = TOKEN_DELAY_S
    client = rig.client()
    body = chat("What is 17 times 23?")
    thought = rig.ollama.reasoning_text(MODEL, body["messages"])
    answer = await client.chat.completions.create(**body)
    message = answer.choices[0].message
    assert (message.model_extra or {})["reasoning_content"] == thought
    assert message.content and "Thinking" not in message.content
    stream = await client.chat.completions.create(**body, stream=True)
    deltas = [c.choices[0].delta async for c in stream if c.choices]
    streamed_thought = "".join((d.model_extra or {}).get("reasoning_content") or "" for d in deltas)
    assert streamed_thought == thought
    assert "".join(d.content or "" for d in deltas) == message.content

    whole, streamed = await rig.exchanges(2)
    native = await native_answer(rig, native_bodies(rig)[0])
    for exchange in (whole, streamed):
        arm = exchange.arm(Role.SERVED)
        assert arm is not None and arm.ok
        assert arm.text == message.content and arm.reasoning_text == thought
    arm = whole.arm(Role.SERVED)
    assert arm is not None
    # eval_count counts the thinking too; Ollama does not say how much of it was thinking.
    assert arm.usage.completion_tokens == native["eval_count"]
    assert native["eval_count"] == len(split_tokens(thought)) + len(split_tokens(message.content))
    assert arm.usage.reasoning_tokens is None

    arm = streamed.arm(Role.SERVED)
    assert arm is not None and arm.ttft_ms is not None and arm.ttft_any_ms is not None
    # Ollama's first line already thinks; its first answer token follows the thinking.
    thinking_s = len(split_tokens(thought)) * TOKEN_DELAY_S
    gap_s = (arm.ttft_ms - arm.ttft_any_ms) / 1000
    figures = f"ttft_any {arm.ttft_any_ms:.1f} ms, ttft {arm.ttft_ms:.1f} ms, thinking {thinking_s}"
    assert arm.ttft_any_ms <= arm.ttft_ms, figures
    assert thinking_s * 0.9 <= gap_s <= thinking_s + 0.5, figures
    await client.close()


async def test_a_mid_stream_error_line_reaches_the_client_as_an_error_event(
    make_rig: RigFactory,
) -> None:
    rig = await make_rig(candidate_kind="ollama", rollout={"mode": "cutover", "candidate": "local"})
    rig.ollama.error_after_lines = 3
    client = rig.client()
    stream = await client.chat.completions.create(**chat(), stream=True)
    received: list[str] = []
    with pytest.raises(openai.APIError, match="an error was encountered while running the model"):
        async for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    (exchange,) = await rig.exchanges(1)
    served = exchange.arm(Role.SERVED)
    assert served is not None and served.status == 200
    assert served.error_kind is ErrorKind.INCOMPLETE_STREAM
    assert served.text == "".join(received) and len(split_tokens(served.text)) == 3
    await client.close()
