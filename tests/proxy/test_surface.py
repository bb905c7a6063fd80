"""The OpenAI surface through the proxy equals the direct answers, byte for byte."""

from __future__ import annotations

import aiohttp
from openai import AsyncOpenAI, OpenAI

from core import Role, Route
from core.memory_sink import InMemorySink
from tests.fakes import ThreadedServer
from tests.proxy.conftest import CLIENT_KEY, RigFactory, chat
from understudy.settings import load_settings
from understudy.wiring import build_app

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


async def raw_post(url: str, body: dict[str, object]) -> tuple[int, bytes, dict[str, str]]:
    async with (
        aiohttp.ClientSession() as s,
        s.post(url, json=body, headers={"Authorization": f"Bearer {CLIENT_KEY}"}) as r,
    ):
        return r.status, await r.read(), dict(r.headers)


async def test_non_streaming_chat_is_byte_identical(make_rig: RigFactory) -> None:
    rig = await make_rig(rollout={"mode": "off"})
    direct_url = rig.servers[0].url + "/v1/chat/completions"
    status_d, direct, _ = await raw_post(direct_url, chat())
    status_p, proxied, headers = await raw_post(rig.base_url + "/chat/completions", chat())
    assert status_d == status_p == 200
    assert proxied == direct
    assert headers["x-understudy-served-by"] == "openai"
    [exchange] = await rig.exchanges(1)
    assert headers["x-understudy-exchange-id"] == str(exchange.id)
    assert headers["x-understudy-request-id"] == str(exchange.id)


async def test_streaming_chat_is_byte_identical(make_rig: RigFactory) -> None:
    rig = await make_rig(rollout={"mode": "off"})
    body = chat(stream=True, stream_options={"include_usage": True})
    _, direct, _ = await raw_post(rig.servers[0].url + "/v1/chat/completions", body)
    _, proxied, headers = await raw_post(rig.base_url + "/chat/completions", body)
    assert proxied == direct
    assert proxied.endswith(b"data: [DONE]\n\n")
    assert headers["Content-Type"].startswith("text/event-stream")


async def test_sdk_sees_the_same_objects_for_every_mirrored_route(make_rig: RigFactory) -> None:
    rig = await make_rig()
    direct = AsyncOpenAI(base_url=rig.servers[0].url + "/v1", api_key=CLIENT_KEY, max_retries=0)
    proxied = rig.client()
    cases = [
        lambda c: c.chat.completions.create(**chat()),
        lambda c: c.chat.completions.create(**chat("What's the weather in Oslo?", tools=TOOLS)),
        lambda c: c.chat.completions.create(
            **chat("Give me JSON.", response_format={"type": "json_object"})
        ),
        lambda c: c.completions.create(model="gpt-4o-mini", prompt="Once upon a time"),
        lambda c: c.embeddings.create(model="text-embedding-3-small", input=["a", "b"]),
    ]
    for make in cases:
        assert (await make(proxied)).model_dump() == (await make(direct)).model_dump()
    tool_answer = await proxied.chat.completions.create(**chat("Weather in Oslo?", tools=TOOLS))
    assert tool_answer.choices[0].message.tool_calls[0].function.name == "get_weather"
    await direct.close()
    await proxied.close()


async def test_streamed_tool_calls_and_usage_are_recorded(make_rig: RigFactory) -> None:
    rig = await make_rig()
    client = rig.client()
    stream = await client.chat.completions.create(
        **chat("What's the weather in Oslo?", tools=TOOLS), stream=True
    )
    names = [
        c.choices[0].delta.tool_calls[0].function.name
        async for c in stream
        if c.choices
        and c.choices[0].delta.tool_calls
        and c.choices[0].delta.tool_calls[0].function.name
    ]
    assert names == ["get_weather"]
    [exchange] = await rig.exchanges(1)
    served = exchange.arm(Role.SERVED)
    shadow = exchange.arm(Role.SHADOW)
    assert served is not None and shadow is not None
    assert served.tool_calls[0].name == "get_weather"
    assert '"city"' in served.tool_calls[0].arguments
    assert served.finish_reason == "tool_calls"
    assert shadow.usage.completion_tokens  # include_usage was added for the shadow only
    assert served.ttft_ms is not None and served.latency_ms is not None
    assert served.ttft_ms <= served.latency_ms
    await client.close()


async def test_completions_and_embeddings_are_mirrored(make_rig: RigFactory) -> None:
    rig = await make_rig()
    client = rig.client()
    await client.completions.create(model="gpt-4o-mini", prompt="Once upon a time")
    await client.embeddings.create(model="gpt-4o-mini", input="hello")
    exchanges = await rig.exchanges(2)
    by_route = {e.route: e for e in exchanges}
    completion = by_route[Route.COMPLETIONS]
    assert completion.arm(Role.SERVED).text  # type: ignore[union-attr]
    embedding = by_route[Route.EMBEDDINGS]
    assert embedding.arm(Role.SERVED).embedding_dims  # type: ignore[union-attr]
    assert embedding.arm(Role.SHADOW).embedding_dims  # type: ignore[union-attr]
    assert [r.body["model"] for r in rig.candidate.requests] == ["llama3.1:8b", "llama3.1:8b"]
    await client.close()


async def test_models_and_other_paths_go_to_the_primary_only(make_rig: RigFactory) -> None:
    rig = await make_rig()
    client = rig.client()
    direct = AsyncOpenAI(base_url=rig.servers[0].url + "/v1", api_key=CLIENT_KEY, max_retries=0)
    models = await client.models.list()
    assert [m.id for m in models.data] == [m.id for m in (await direct.models.list()).data]
    moderation = await client.moderations.create(input="hello")
    assert moderation.results
    assert rig.candidate.requests == []
    assert {r.path for r in rig.primary.requests} == {"/v1/models", "/v1/moderations"}
    assert rig.sink.exchanges == type(rig.sink.exchanges)()  # pass-through is not mirrored
    await client.close()
    await direct.close()


def test_sync_sdk_through_the_proxy_in_threads() -> None:
    from tests.fakes import FakeOpenAI

    primary, candidate = FakeOpenAI(persona="openai"), FakeOpenAI(persona="candidate")
    with ThreadedServer(primary.app) as p, ThreadedServer(candidate.app) as c:
        settings = load_settings(
            primary={"base_url": p.url + "/v1"},
            candidates=[{"name": "local", "base_url": c.url + "/v1"}],
            rollout={"mode": "shadow"},
        )
        sink = InMemorySink()
        with ThreadedServer(build_app(settings, sink=sink)) as proxy:
            sync_proxy = OpenAI(base_url=proxy.url + "/v1", api_key=CLIENT_KEY, max_retries=0)
            sync_direct = OpenAI(base_url=p.url + "/v1", api_key=CLIENT_KEY, max_retries=0)
            via = sync_proxy.chat.completions.create(**chat())
            assert via.model_dump() == sync_direct.chat.completions.create(**chat()).model_dump()
            chunks = list(sync_proxy.chat.completions.create(**chat(), stream=True))
            text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
            assert text == via.choices[0].message.content
    assert any(r.path == "/v1/chat/completions" for r in candidate.requests)
    assert len(sink.exchanges) == 2


async def test_pass_through_responses_are_identified_and_logged(make_rig: RigFactory) -> None:
    rig = await make_rig()
    async with aiohttp.ClientSession() as s, s.get(rig.base_url + "/models") as r:
        assert r.status == 200
        assert r.headers["x-understudy-served-by"] == "openai"
        request_id = r.headers["x-understudy-request-id"]
        assert "x-understudy-exchange-id" not in r.headers  # nothing is recorded
    [line] = [e for e in rig.log_events() if e["event"] == "passthrough"]
    assert line["path"] == "/v1/models" and line["status"] == 200
    assert line["request_id"] == request_id
