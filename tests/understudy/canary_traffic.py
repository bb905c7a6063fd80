"""What the canary sweep sends: a distinct fake key in every place a key can travel.

Clients send keys shaped like OpenAI's in headers, the query, the path and body fields, in
valid and refused requests; the upstreams fail in ways that echo what they were sent.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import urllib.request
from collections.abc import Mapping
from typing import Any

import openai
from aiohttp import web
from openai import AsyncOpenAI

from storage.privacy import STORED_DEPTH
from tests.fakes import FakeOpenAI, Fault, RecordedRequest
from tests.faults.serve import Proxy

# Where a canary travels; each place gets its own, so a hit says where it came from.
PLACES = (
    "bearer", "api_key_header", "x_api_key", "organization", "project", "custom_header",
    "cookie", "extra_headers", "query", "system", "prompt", "tool_argument", "user",
    "metadata", "extra_body", "body_extra_headers", "answer_echo", "tool_schema",
    "completion_prompt", "embedding_input", "passthrough_path", "passthrough_query",
    "echo_401", "echo_500", "candidate_error", "primary_timeout", "candidate_timeout",
    "rejected", "spilled", "deep_stored",
)  # fmt: skip
# Canaries of no known shape, which no pattern can mask: the upstreams' keys, client keys
# found only by where they are, and whatever refused requests carry (nothing of a refused
# request is quoted anywhere).
PLAIN_PLACES = (
    "operator", "candidate_key", "plain_bearer", "plain_api_key_header", "plain_x_api_key",
    "plain_custom_header", "plain_cookie", "plain_organization", "plain_project",
    "plain_password", "plain_deep_secret", "plain_query", "plain_passthrough_query",
    "malformed_header", "non_utf8_header", "bad_json", "too_deep", "nan",
)  # fmt: skip
# Deeper than storage keeps as structure (it keeps the rest as JSON text), within the
# proxy's nesting limit.
STORED_NESTING = STORED_DEPTH + 8
# Primary answers quoting the prompt on purpose: the client gets them unchanged.
ANSWERED_BACK = ("answer_echo", "tool_schema")
ECHO_STATUS = {"echo-401": 401, "echo-500": 500}
CANDIDATE_ONLY_ECHO = {"candidate-echo": 500}


def new_canaries() -> dict[str, str]:
    shaped = {place: "sk-proj-" + secrets.token_urlsafe(36) for place in PLACES}
    return {**shaped, **{place: secrets.token_hex(24) for place in PLAIN_PLACES}}


def nested(value: Any, depth: int) -> Any:
    for _ in range(depth):
        value = [value]
    return value


def client_of(url: str, c: Mapping[str, str], prefix: str = "") -> AsyncOpenAI:
    """An SDK client sending the canaries of the header places (``prefix`` picks a set)."""
    return AsyncOpenAI(
        base_url=f"{url}/v1",
        api_key=c[prefix + "bearer"],
        organization=c[prefix + "organization"],
        project=c[prefix + "project"],
        max_retries=0,
        default_headers={
            "api-key": c[prefix + "api_key_header"],
            "x-api-key": c[prefix + "x_api_key"],
            "X-Custom-Auth": c[prefix + "custom_header"],
            "Cookie": f"session={c[prefix + 'cookie']}",
        },
    )


class EchoingOpenAI(FakeOpenAI):
    """A careless OpenAI-compatible server: on chosen models its errors quote the key (in
    the body and a header) and the body it was sent, on one it hangs; a prompt starting "repeat:" is answered back."""

    def __init__(self, persona: str, echo: Mapping[str, int], hang_model: str) -> None:
        super().__init__(persona=persona)
        self.echo = dict(echo)
        self.hang_model = hang_model

    async def _early_fault(
        self, request: web.Request, record: RecordedRequest, fault: str
    ) -> web.StreamResponse | None:
        model = record.body.get("model") if isinstance(record.body, dict) else None
        if model in self.echo:
            quoted = record.raw_body.decode(errors="replace")
            auth = record.headers.get("Authorization", "").removeprefix("Bearer ")
            answer = self.error_response(
                self.echo[model],
                f"Incorrect API key provided: {auth}. Your request was: {quoted}",
                type_="invalid_request_error",
                code="invalid_api_key",
            )
            answer.headers["x-debug-api-key"] = auth
            return answer
        if model == self.hang_model:
            fault = Fault.HANG
        return await super()._early_fault(request, record, fault)

    def reply_text(self, model: str, prompt: Any, index: int = 0) -> str:
        text = super().reply_text(model, prompt, index)
        last = prompt[-1].get("content") if isinstance(prompt, list) and prompt else None
        return f"{text} {last}" if isinstance(last, str) and last.startswith("repeat:") else text


def received(fake: FakeOpenAI) -> bytes:
    """Everything an upstream was sent: headers, path, query and body."""
    return b"\n".join(
        repr((r.path, r.query, list(r.headers.items()))).encode() + r.raw_body
        for r in fake.requests
    )


# -- the client side ---------------------------------------------------------------------


class Responses:
    """Every response a client got: status line, headers and body, by request label."""

    def __init__(self) -> None:
        self.seen: dict[str, bytes] = {}
        self.exchange_ids: dict[str, str] = {}  # label -> id, without dashes

    def add(self, label: str, status: int, headers: Mapping[str, str], body: bytes) -> None:
        head = "\n".join(f"{k}: {v}" for k, v in headers.items())
        self.seen[label] = f"{status}\n{head}\n".encode() + body
        if (exchange_id := headers.get("x-understudy-exchange-id")) is not None:
            self.exchange_ids[label] = exchange_id.replace("-", "")


async def sdk_call(responses: Responses, label: str, call: Any) -> int:
    """Run one SDK call through ``with_raw_response``; keep what came back, error or not."""
    try:
        raw = await call
    except openai.APIStatusError as exc:
        response = exc.response
        responses.add(label, response.status_code, response.headers, response.content)
        return response.status_code
    body = b"".join([chunk async for chunk in raw.http_response.aiter_bytes()])
    responses.add(label, raw.status_code, raw.headers, body)
    return int(raw.status_code)


async def send_raw(url: str, head: list[bytes], body: bytes = b"") -> tuple[int, bytes]:
    """POST exactly these header lines and body over a socket; the whole answer, read to EOF."""
    host, port = url.removeprefix("http://").split(":")
    lines = [b"POST /v1/chat/completions HTTP/1.1", f"Host: {host}".encode(), *head]
    lines += [b"Content-Type: application/json", b"Content-Length: %d" % len(body)]
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"\r\n".join([*lines, b"Connection: close"]) + b"\r\n\r\n" + body)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return int(answer.split(b" ", 2)[1]), answer


def chat_body(content: str, extra: str = "") -> bytes:
    message = json.dumps([{"role": "user", "content": content}])
    return f'{{"model": "gpt-4o-mini", "messages": {message}{extra}}}'.encode()


async def send_everything(url: str, c: Mapping[str, str], responses: Responses) -> None:
    """Every request of the sweep, concurrently; each status checked as the API promises."""
    client, plain = client_of(url, c), client_of(url, c, "plain_")
    chat = client.chat.completions.with_raw_response.create

    def user(content: str) -> list[Any]:
        return [{"role": "user", "content": content}]

    tool_call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "lookup", "arguments": json.dumps({"key": c["tool_argument"]})},
    }
    enum_tool = {
        "type": "function",
        "function": {
            "name": "lookup",
            "parameters": {
                "type": "object",
                "properties": {"token": {"type": "string", "enum": [c["tool_schema"]]}},
            },
        },
    }
    sdk = {
        "plain_chat": plain.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=user("hello")
        ),
        "plain_passthrough": plain.models.with_raw_response.list(),
        "main": chat(
            model="gpt-4o-mini",
            messages=[
                {"role": "system", "content": f"Use {c['system']} for lookups."},
                {"role": "user", "content": f"My key is {c['prompt']}, keep it safe."},
                {"role": "assistant", "content": None, "tool_calls": [tool_call]},
                {"role": "tool", "tool_call_id": "call_1", "content": "done"},
            ],
            user=c["user"],
            metadata={"note": c["metadata"]},
            extra_headers={"X-Extra-Header": c["extra_headers"]},
            extra_query={"api_key": c["query"], "key": c["plain_query"]},
            extra_body={
                "custom_field": c["extra_body"],
                "extra_headers": {"Authorization": f"Bearer {c['body_extra_headers']}"},
                "password": c["plain_password"],
                "deep": nested(
                    {"client_secret": c["plain_deep_secret"], "note": c["deep_stored"]},
                    STORED_NESTING,
                ),
            },
        ),
        "answer_echo": chat(
            model="gpt-4o-mini", messages=user(f"repeat: {c['answer_echo']}"), stream=True
        ),
        "tool_schema": chat(
            model="gpt-4o-mini",
            messages=user("call it"),
            tools=[enum_tool],
            tool_choice={"type": "function", "function": {"name": "lookup"}},
        ),
        "completion": client.completions.with_raw_response.create(
            model="gpt-3.5-turbo-instruct", prompt=c["completion_prompt"]
        ),
        "embedding": client.embeddings.with_raw_response.create(
            model="text-embedding-3-small", input=c["embedding_input"]
        ),
        "passthrough_path": client.models.with_raw_response.retrieve(c["passthrough_path"]),
        "passthrough_query": client.models.with_raw_response.list(
            extra_query={"api_key": c["passthrough_query"], "key": c["plain_passthrough_query"]}
        ),
        "echo_401": chat(model="echo-401", messages=user(c["echo_401"])),
        "echo_500": chat(model="echo-500", messages=user("hi"), user=c["echo_500"]),
        "candidate_error": chat(model="candidate-echo", messages=user(c["candidate_error"])),
        "primary_timeout": chat(model="primary-hang", messages=user(c["primary_timeout"])),
        "candidate_timeout": chat(model="candidate-hang", messages=user(c["candidate_timeout"])),
    }
    deep = "[" * 100 + json.dumps(c["too_deep"]) + "]" * 100
    raw = {
        "malformed_header": ([f"X-Secret Key: {c['malformed_header']}".encode()], chat_body("a")),
        "non_utf8_header": (
            [b"Authorization: Bearer \xff" + c["non_utf8_header"].encode() + b"\xfe"],
            chat_body("b"),
        ),
        "bad_json": ([], chat_body(c["bad_json"])[:-1]),
        "too_deep": ([], chat_body("c", f', "metadata": {deep}')),
        "nan": ([], chat_body(c["nan"], ', "temperature": NaN')),
    }
    sdk_statuses = asyncio.gather(
        *(sdk_call(responses, label, call) for label, call in sdk.items())
    )
    raw_answers = asyncio.gather(*(send_raw(url, head, body) for head, body in raw.values()))
    by_label = dict(zip(sdk, await sdk_statuses, strict=True))
    for label, (status, answer) in zip(raw, await raw_answers, strict=True):
        responses.add(label, status, {}, answer)
        by_label[label] = status
    assert by_label == {
        **dict.fromkeys(sdk, 200),
        "passthrough_path": 404,
        "echo_401": 401,
        "echo_500": 500,
        "primary_timeout": 504,
        **dict.fromkeys(raw, 400),
    }
    await client.close()
    await plain.close()


def chat_on(proxy: Proxy, model: str, content: str) -> str:
    """One chat request over plain HTTP; the exchange id it was recorded under."""
    request = urllib.request.Request(
        f"{proxy.url}/v1/chat/completions",
        data=chat_body(content).replace(b'"gpt-4o-mini"', json.dumps(model).encode()),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        return str(response.headers["x-understudy-exchange-id"]).replace("-", "")
