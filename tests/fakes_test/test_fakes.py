"""The fakes speak well enough for the official openai SDK, and fail as advertised."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import pytest
from openai import AsyncOpenAI, OpenAI

from tests.fakes import FakeOllama, FakeOpenAI, Fault, RunningServer, ThreadedServer, running

KEY = "sk-test-0123456789abcdef"
WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
            "required": ["location"],
        },
    },
}
HI: Any = [{"role": "user", "content": "Say hi"}]


@pytest.fixture
def fake() -> FakeOpenAI:
    return FakeOpenAI(persona="primary", expected_api_key=KEY)


@pytest.fixture
async def server(fake: FakeOpenAI) -> AsyncIterator[RunningServer]:
    async with running(fake.app) as srv:
        yield srv


@pytest.fixture
async def client(server: RunningServer) -> AsyncIterator[AsyncOpenAI]:
    async with AsyncOpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0) as c:
        yield c


async def until(condition: Any, timeout_s: float = 2.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_chat_plain_and_streamed_agree(client: AsyncOpenAI, fake: FakeOpenAI) -> None:
    plain = await client.chat.completions.create(model="gpt-4o-mini", messages=HI, n=2)
    assert plain.object == "chat.completion" and len(plain.choices) == 2
    text = plain.choices[0].message.content or ""
    assert text.startswith("primary: gpt-4o-mini") and text != plain.choices[1].message.content
    assert plain.usage is not None and plain.usage.prompt_tokens_details is not None
    assert plain.usage.prompt_tokens_details.cached_tokens == 0

    stream = await client.chat.completions.create(
        model="gpt-4o-mini", messages=HI, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
    assert chunks[-2].choices[0].finish_reason == "stop"
    usage = chunks[-1].usage
    assert chunks[-1].choices == [] and usage is not None
    assert usage.prompt_tokens == plain.usage.prompt_tokens
    assert usage.completion_tokens * 2 == plain.usage.completion_tokens  # plain had n=2
    assert len({c.id for c in chunks}) == 1 and chunks[0].id.startswith("chatcmpl-")
    assert fake.requests[-1].body["stream"] is True
    assert fake.requests[-1].headers["authorization"] == f"Bearer {KEY}"


async def test_tool_call_plain_and_streamed(client: AsyncOpenAI) -> None:
    ask: Any = [{"role": "user", "content": "What's the weather in Paris?"}]
    plain = await client.chat.completions.create(
        model="gpt-4o-mini", messages=ask, tools=[WEATHER_TOOL]
    )
    choice = plain.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    call = (choice.message.tool_calls or [])[0]
    assert call.function.name == "get_weather"
    assert set(json.loads(call.function.arguments)) == {"location", "unit"}

    stream = await client.chat.completions.create(
        model="gpt-4o-mini", messages=ask, tools=[WEATHER_TOOL], stream=True
    )
    fragments, finish = [], None
    async for chunk in stream:
        for delta_call in chunk.choices[0].delta.tool_calls or []:
            fragments.append(delta_call.function.arguments if delta_call.function else "")
        finish = chunk.choices[0].finish_reason or finish
    assert len(fragments) > 2 and "".join(f or "" for f in fragments) == call.function.arguments
    assert finish == "tool_calls"


async def test_json_mode_completions_embeddings_models(client: AsyncOpenAI) -> None:
    json_mode = await client.chat.completions.create(
        model="gpt-4o-mini", messages=HI, response_format={"type": "json_object"}
    )
    assert isinstance(json.loads(json_mode.choices[0].message.content or ""), dict)

    done = await client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Once")
    assert done.object == "text_completion" and done.choices[0].text.startswith("primary:")
    streamed = await client.completions.create(
        model="gpt-3.5-turbo-instruct", prompt="Once", stream=True
    )
    assert "".join([c.choices[0].text async for c in streamed]) == done.choices[0].text

    # The SDK asks for base64 by default and decodes it; both encodings must agree.
    by_default = await client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    as_floats = await client.embeddings.create(
        model="text-embedding-3-small", input=["a", "b"], encoding_format="float"
    )
    assert len(by_default.data[0].embedding) == 1536
    assert [d.embedding for d in by_default.data] == [d.embedding for d in as_floats.data]
    assert by_default.data[0].embedding != by_default.data[1].embedding

    models = await client.models.list()
    assert "gpt-4o-mini" in [m.id for m in models.data]
    assert (await client.models.retrieve("gpt-4o")).id == "gpt-4o"
    with pytest.raises(openai.NotFoundError):
        await client.models.retrieve("no-such-model")
    moderation = await client.moderations.create(input="hello")
    assert moderation.results[0].flagged is False


async def test_wrong_key_gets_401_without_echoing_it(server: RunningServer) -> None:
    secret = "sk-wrong-key-abcdefghijklmnop"
    async with AsyncOpenAI(base_url=server.url + "/v1", api_key=secret, max_retries=0) as c:
        with pytest.raises(openai.AuthenticationError) as caught:
            await c.chat.completions.create(model="gpt-4o-mini", messages=HI)
    assert caught.value.code == "invalid_api_key" and secret not in str(caught.value)


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (Fault.HTTP_500, openai.InternalServerError),
        (Fault.HTTP_429, openai.RateLimitError),
        (Fault.GARBAGE_JSON, json.JSONDecodeError),
        (Fault.RESET, openai.APIConnectionError),
    ],
)
async def test_answer_faults(
    client: AsyncOpenAI, fake: FakeOpenAI, fault: Fault, error: type[Exception]
) -> None:
    fake.fault = fault
    with pytest.raises(error):
        await client.chat.completions.create(model="gpt-4o-mini", messages=HI)
    # The per-request header overrides the fake-wide setting.
    ok = await client.chat.completions.create(
        model="gpt-4o-mini", messages=HI, extra_headers={"x-fake-fault": "none"}
    )
    fake.fault = None
    assert ok.choices and not fake.cancelled


async def test_hang_and_slow_first_byte_time_out(client: AsyncOpenAI, fake: FakeOpenAI) -> None:
    with pytest.raises(openai.APITimeoutError):
        await client.chat.completions.create(
            model="gpt-4o-mini", messages=HI, timeout=0.2, extra_headers={"x-fake-fault": "hang"}
        )
    await until(lambda: len(fake.cancelled) == 1)
    assert fake.cancelled[0].request.path == "/v1/chat/completions"

    fake.fault, fake.slow_first_byte_s = Fault.SLOW_FIRST_BYTE, 0.4
    with pytest.raises(openai.APITimeoutError):
        await client.chat.completions.create(model="gpt-4o-mini", messages=HI, timeout=0.1)
    started = time.monotonic()
    await client.chat.completions.create(model="gpt-4o-mini", messages=HI, timeout=2)
    assert time.monotonic() - started >= 0.4


async def test_stream_faults(client: AsyncOpenAI, fake: FakeOpenAI) -> None:
    fake.fault, fake.cut_after_chunks = Fault.CUT_STREAM, 3
    stream = await client.chat.completions.create(model="gpt-4o-mini", messages=HI, stream=True)
    seen = []
    with pytest.raises(openai.APIConnectionError):
        async for chunk in stream:
            seen.append(chunk)
    assert len(seen) == 3
    with pytest.raises(openai.APIConnectionError):  # a plain answer is cut halfway
        await client.chat.completions.create(model="gpt-4o-mini", messages=HI)

    fake.fault = Fault.HUGE_LINE
    stream = await client.chat.completions.create(model="gpt-4o-mini", messages=HI, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream])
    assert len(text) == 2 * 1024 * 1024
    assert not fake.cancelled


async def test_client_leaving_mid_stream_is_recorded(client: AsyncOpenAI, fake: FakeOpenAI) -> None:
    fake.token_delay_s = 0.05
    stream = await client.chat.completions.create(model="gpt-4o-mini", messages=HI, stream=True)
    await stream.__anext__()
    await stream.__anext__()
    await stream.close()
    await until(lambda: len(fake.cancelled) == 1)
    assert fake.cancelled[0].at > fake.cancelled[0].request.received_at


async def test_token_rhythm(client: AsyncOpenAI, fake: FakeOpenAI) -> None:
    fake.first_byte_delay_s, fake.token_delay_s = 0.1, 0.02
    started = time.monotonic()
    stream = await client.chat.completions.create(model="gpt-4o-mini", messages=HI, stream=True)
    arrivals = [time.monotonic() - started async for _ in stream]
    assert arrivals[0] >= 0.1
    assert arrivals[-1] - arrivals[0] >= 0.02 * (len(arrivals) - 3)


def test_sync_client_through_threaded_server() -> None:
    fake = FakeOpenAI(persona="candidate")
    with ThreadedServer(fake.app) as server:
        client = OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
        with client:
            plain = client.chat.completions.create(model="m", messages=HI)
            stream = client.chat.completions.create(model="m", messages=HI, stream=True)
            streamed = "".join(c.choices[0].delta.content or "" for c in stream)
    assert streamed == plain.choices[0].message.content
    assert streamed.startswith("candidate: m") and len(fake.requests) == 2


async def test_ollama_ndjson_and_management_log() -> None:
    fake = FakeOllama(persona="local")
    chat = {"model": "llama3.2", "messages": HI}
    async with running(fake.app) as server, aiohttp.ClientSession(server.url) as http:
        async with http.post("/api/chat", json=chat) as resp:
            assert resp.content_type == "application/x-ndjson"
            lines = [json.loads(line) async for line in resp.content]
        async with http.post("/api/chat", json={**chat, "stream": False}) as resp:
            whole = await resp.json()
        async with http.post("/api/generate", json={"model": "llama3.2", "prompt": "Hi"}) as resp:
            generated = [json.loads(line) async for line in resp.content]
        async with http.post("/api/embed", json={"model": "all-minilm", "input": ["a"]}) as resp:
            embedded = await resp.json()
        async with http.get("/api/tags") as resp:
            tags = await resp.json()
        async with http.post("/api/pull", json={"model": "llama3.2"}) as resp:
            assert resp.status == 200
        fake.fault = Fault.CUT_STREAM
        async with http.post("/api/chat", json=chat) as resp:
            with pytest.raises(aiohttp.ClientPayloadError):
                await resp.read()

    assert all(not line["done"] for line in lines[:-1]) and lines[-1]["done"] is True
    final = lines[-1]
    assert final["done_reason"] == "stop" and final["eval_count"] == len(lines) - 1
    assert final["total_duration"] >= final["load_duration"] > 0
    text = "".join(line["message"]["content"] for line in lines)
    assert text == whole["message"]["content"] and text.startswith("local: llama3.2")
    assert generated[-1]["done"] and "context" in generated[-1]
    assert "".join(g["response"] for g in generated).startswith("local:")
    assert len(embedded["embeddings"][0]) == 384 and embedded["prompt_eval_count"] == 1
    assert tags["models"][0]["name"] == "llama3.2:latest"
    assert [r.path for r in fake.management_calls] == ["/api/pull"]
