"""Bad input gets OpenAI's error shape with the right status, never a traceback or a 500."""

from __future__ import annotations

from typing import Any

import aiohttp
import openai
import pytest

from tests.fakes import FakeOllama
from tests.proxy.conftest import CLIENT_KEY, RigFactory, chat


async def post(
    url: str, data: bytes | str, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            url, data=data, headers={"Content-Type": "application/json", **(headers or {})}
        ) as r,
    ):
        # A refused request has an id and says nothing upstream answered; no exchange is
        # recorded, so it carries no exchange id.
        assert len(r.headers["x-understudy-request-id"]) == 36
        assert "x-understudy-exchange-id" not in r.headers
        assert r.headers["x-understudy-served-by"] == "understudy"
        return r.status, await r.json(content_type=None)


def assert_openai_error(body: Any, param: str | None = None) -> None:
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["message"] and "Traceback" not in body["error"]["message"]
    if param is not None:
        assert body["error"]["param"] == param


CASES = [
    ("/chat/completions", b"{not json", None, "invalid_json"),
    ("/chat/completions", b"\xff\xfe", None, "invalid_encoding"),  # a UTF-16 byte order mark
    ("/chat/completions", b"[1, 2]", None, "invalid_type"),
    ("/chat/completions", b'"a string"', None, "invalid_type"),
    (
        "/chat/completions",
        b'{"messages": [{"role": "user", "content": "x"}]}',
        "model",
        "missing_required_parameter",
    ),
    ("/chat/completions", b'{"model": "gpt-4o-mini"}', "messages", "missing_required_parameter"),
    ("/chat/completions", b'{"model": 5, "messages": []}', "model", "invalid_type"),
    ("/chat/completions", b'{"model": "m", "messages": "hi"}', "messages", "invalid_type"),
    ("/chat/completions", b'{"model": "m", "messages": []}', "messages", "invalid_value"),
    ("/chat/completions", b'{"model": "m", "messages": [5]}', "messages[0]", "invalid_type"),
    (
        "/chat/completions",
        b'{"model": "m", "messages": [{"role": "user"}], "stream": "yes"}',
        "stream",
        "invalid_type",
    ),
    (
        "/chat/completions",
        b'{"model": "m", "messages": [{"role": "user"}], "n": true}',
        "n",
        "invalid_type",
    ),
    (
        "/chat/completions",
        b'{"model": "m", "messages": [{"role": "user"}], "max_tokens": 0}',
        "max_tokens",
        "invalid_value",
    ),
    (
        "/chat/completions",
        b'{"model": "m", "messages": [{"role": "user"}], "temperature": "hot"}',
        "temperature",
        "invalid_type",
    ),
    ("/completions", b'{"model": "m"}', "prompt", "missing_required_parameter"),
    ("/embeddings", b'{"model": "m", "input": 3}', "input", "invalid_type"),
]


@pytest.mark.parametrize(("path", "body", "param", "code"), CASES)
async def test_malformed_requests_get_a_400(
    make_rig: RigFactory, path: str, body: bytes, param: str | None, code: str
) -> None:
    rig = await make_rig()
    status, answer = await post(rig.base_url + path, body)
    assert status == 400
    assert_openai_error(answer, param)
    assert answer["error"]["code"] == code
    assert rig.primary.requests == [] and rig.candidate.requests == []


async def test_sdk_raises_bad_request_with_the_param(make_rig: RigFactory) -> None:
    rig = await make_rig()
    client = rig.client()
    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(model="gpt-4o-mini", messages=[])
    assert caught.value.param == "messages"
    await client.close()


async def test_body_over_the_limit_gets_a_413(make_rig: RigFactory) -> None:
    rig = await make_rig(limits={"max_body_bytes": 4096})
    big = chat("x" * 10_000)
    status, answer = await post(rig.base_url + "/chat/completions", __import__("json").dumps(big))
    assert status == 413
    assert_openai_error(answer)
    client = rig.client()
    with pytest.raises(openai.APIStatusError) as caught:
        await client.chat.completions.create(**big)
    assert caught.value.status_code == 413
    assert rig.primary.requests == []
    await client.close()


async def test_oversized_n_and_max_tokens_are_clamped(make_rig: RigFactory) -> None:
    rig = await make_rig(limits={"max_n": 2, "max_tokens": 100})
    client = rig.client()
    answer = await client.chat.completions.create(**chat(), n=5, max_tokens=5000)
    assert len(answer.choices) == 2
    sent = rig.primary.requests[0].body
    assert sent["n"] == 2 and sent["max_tokens"] == 100
    await client.close()


async def test_oversized_n_is_rejected_when_configured(make_rig: RigFactory) -> None:
    rig = await make_rig(limits={"max_n": 2, "on_exceed": "reject"})
    status, answer = await post(
        rig.base_url + "/chat/completions", __import__("json").dumps(chat(n=3))
    )
    assert status == 400 and answer["error"]["param"] == "n"
    assert answer["error"]["code"] == "limit_exceeded"
    assert rig.primary.requests == []


async def test_upstream_fields_in_the_body_are_ignored(make_rig: RigFactory) -> None:
    rig = await make_rig()
    trap = FakeOllama()  # nothing may ever reach a host named in a request
    client = rig.client()
    await client.chat.completions.create(
        **chat(),
        extra_body={
            "api_base": "http://127.0.0.1:9/v1",
            "base_url": "http://evil/v1",
            "api_key": "sk-from-body",
        },
    )
    await rig.exchanges(1)
    for request in rig.primary.requests + rig.candidate.requests:
        assert not {"api_base", "base_url", "api_key"} & set(request.body)
    assert trap.requests == []
    await client.close()


@pytest.mark.parametrize("path", ["/api/pull", "/api/create", "/api/delete", "/api/chat", "/nope"])
async def test_candidate_management_paths_are_never_forwarded(
    make_rig: RigFactory, path: str
) -> None:
    rig = await make_rig(candidate_kind="ollama")
    status, answer = await post(rig.proxy.url + path, b'{"model": "llama3.1:8b"}')
    assert status == 404
    assert_openai_error(answer)
    assert rig.ollama.requests == []


async def test_wrong_method_on_a_mirrored_route(make_rig: RigFactory) -> None:
    rig = await make_rig()
    async with (
        aiohttp.ClientSession() as s,
        s.put(
            rig.base_url + "/embeddings",
            data=b"{}",
            headers={"Authorization": f"Bearer {CLIENT_KEY}"},
        ) as r,
    ):
        body = await r.json(content_type=None)
    # Not a mirrored method: it is passed to the primary, whose own error comes back.
    assert r.status in (404, 405)
    assert_openai_error(body)
