"""Hostile input through the real proxy: every undecodable byte is a 400 in OpenAI's shape.

Raw sockets where a client library would normalise what we want to send (header bytes
that are not UTF-8, bodies that are not UTF-8 JSON); the official SDK where it can say it.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from core import Exchange, FlagState, Role, RolloutMode, Route
from core.memory_sink import InMemorySink
from proxy.capture import Capture
from proxy.config import Limits
from proxy.errors import RequestError
from proxy.exchange import CLIENT_HEADERS
from proxy.record import Arm, ExchangeRecord
from proxy.routing import bucket, decide
from proxy.subject import subject_hash, subject_of
from proxy.validation import check_headers, parse_request
from tests.proxy.conftest import CLIENT_KEY, Rig, RigFactory, chat

SECRET_PROMPT = "my-secret-prompt-4e1f"


@dataclass(frozen=True)
class RawAnswer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


async def send_raw(
    rig: Rig,
    body: bytes,
    *,
    path: str = "/v1/chat/completions",
    headers: list[tuple[bytes, bytes]] | None = None,
) -> RawAnswer:
    """POST exactly these bytes (headers included) with Connection: close; read to the end."""
    host, port = rig.proxy.url.removeprefix("http://").split(":")
    given = (
        headers if headers is not None else [(b"Authorization", f"Bearer {CLIENT_KEY}".encode())]
    )
    if not any(name.lower() == b"content-type" for name, _ in given):
        given = [*given, (b"Content-Type", b"application/json")]
    head = [f"POST {path} HTTP/1.1".encode(), f"Host: {host}".encode()]
    head += [name + b": " + value for name, value in given]
    head += [f"Content-Length: {len(body)}".encode(), b"Connection: close"]
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), timeout=10)
    writer.close()
    raw_head, _, payload = data.partition(b"\r\n\r\n")
    status_line, *lines = raw_head.decode("latin-1").split("\r\n")
    parsed = {}
    for line in lines:
        name, _, value = line.partition(":")
        parsed[name.strip().lower()] = value.strip()
    if parsed.get("transfer-encoding") == "chunked":
        payload = _unchunk(payload)
    return RawAnswer(int(status_line.split(" ")[1]), parsed, payload)


def _unchunk(data: bytes) -> bytes:
    out = []
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out.append(data[:size])
        data = data[size + 2 :]
    return b"".join(out)


def assert_refused(rig: Rig, answer: RawAnswer, status: int, code: str) -> dict[str, Any]:
    """Our own refusal: the status, OpenAI's error shape, no upstream called, no 500 logged."""
    assert answer.status == status, answer.body
    assert answer.headers["x-understudy-served-by"] == "understudy"
    body = answer.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["code"] == code
    assert "Traceback" not in body["error"]["message"]
    assert rig.primary.requests == [] and rig.candidate.requests == []
    assert not any(e.get("event") == "internal_error" for e in rig.log_events())
    return body["error"]


def shadow_flag() -> FlagState:
    return FlagState("chat", RolloutMode.SHADOW, "local", 0.0, 1.0, 0.0, version=1)


def raw_chat(extra: str = "", content: str = "hello") -> bytes:
    return (
        '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "'
        + content
        + '"}]'
        + extra
        + "}"
    ).encode()


def nested(depth: int) -> bytes:
    """A chat body whose deepest point is ``depth`` containers (the body itself is level 1)."""
    inner = "[" * (depth - 1) + "]" * (depth - 1)
    return raw_chat(f', "metadata_probe": {inner}')


# -- 1. lone surrogates and undecodable headers --------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        raw_chat(', "user": "\\ud800"'),
        raw_chat(', "user": "\\udfff\\ud83d"'),  # low before high is no pair
        raw_chat(content="\\ud83d"),  # high at the very end of a string
        raw_chat(', "tools": [{"type": "function", "function": {"\\udc00": 1}}]'),  # a key
    ],
)
async def test_a_lone_surrogate_anywhere_in_the_body_is_a_400(
    make_rig: RigFactory, body: bytes
) -> None:
    rig = await make_rig()
    error = assert_refused(rig, await send_raw(rig, body), 400, "invalid_unicode")
    assert "surrogate" in error["message"]


async def test_a_surrogate_pair_is_text_and_is_served(make_rig: RigFactory) -> None:
    rig = await make_rig()
    answer = await send_raw(rig, raw_chat(', "user": "\\ud83d\\ude00"'))
    assert answer.status == 200
    assert rig.primary.requests[0].body["user"] == "\U0001f600"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        (b"x-understudy-subject", b"user-\xff\xfe-id"),
        (b"Authorization", b"Bearer sk-\xc3\x28-badbytes"),
        (b"OpenAI-Organization", b"org-\x80"),
        (b"OpenAI-Project", b"proj-\xed\xa0\x80"),  # an encoded surrogate is not UTF-8 either
        (b"OpenAI-Beta", b"assistants=\xc0\xaf"),  # an overlong encoding
    ],
)
async def test_a_header_that_is_not_text_is_a_400_naming_it(
    make_rig: RigFactory, name: bytes, value: bytes
) -> None:
    rig = await make_rig()
    headers = [(b"Authorization", f"Bearer {CLIENT_KEY}".encode())]
    headers = [h for h in headers if h[0].lower() != name.lower()] + [(name, value)]
    answer = await send_raw(rig, raw_chat(), headers=headers)
    error = assert_refused(rig, answer, 400, "invalid_header")
    assert name.decode() in error["message"] and error["param"] == name.decode()
    # Never echoed, not even its readable part.
    readable = value.decode("ascii", "ignore")
    assert readable[-5:] not in answer.body.decode("utf-8", "replace")
    assert readable[-5:] not in rig.logs.getvalue()


@pytest.mark.parametrize("value", ["a\x00b", "tab\tis fine\x7f", "x\x1b[31m", "\udcff"])
def test_control_characters_and_surrogates_are_not_header_text(value: str) -> None:
    # aiohttp's parser refuses most of these before the proxy sees them; this is the backstop.
    headers = CIMultiDictProxy(CIMultiDict({"OpenAI-Beta": "ok", "Authorization": value}))
    with pytest.raises(RequestError) as caught:
        check_headers(headers, CLIENT_HEADERS)
    assert caught.value.status == 400 and caught.value.param == "Authorization"
    assert value not in caught.value.message
    check_headers(
        CIMultiDictProxy(CIMultiDict({"Authorization": "Bearer\tsk-ok é"})), CLIENT_HEADERS
    )


async def test_valid_non_ascii_subject_header_is_fine(make_rig: RigFactory) -> None:
    rig = await make_rig()
    headers = [
        (b"Authorization", f"Bearer {CLIENT_KEY}".encode()),
        (b"x-understudy-subject", "Zoë Ångström".encode()),
    ]
    assert (await send_raw(rig, raw_chat(), headers=headers)).status == 200


def test_hashing_is_total_on_any_string() -> None:
    """What the proxy hashes never raises, lone surrogates included, and valid text is stable."""
    flag = shadow_flag()
    for text in ("\ud800", "a\udcff", "\udfff\ud800", "plain", "Zoë"):
        assert 0 <= bucket("flag", text) < 10_000
        assert len(subject_hash(text)) == 16
        assert subject_of({}, {"Authorization": text}).startswith("key:")
        decide(flag, text, primary="openai", shadow_draw=0.5, noise_draw=0.5)
    # Same digest as a plain UTF-8 encode for valid text: no subject moved bucket.
    expected = hashlib.blake2b(b"flag:Zo\xc3\xab", digest_size=8).digest()
    assert bucket("flag", "Zoë") == int.from_bytes(expected, "big") % 10_000


# -- 2. strict JSON ----------------------------------------------------------------------------


async def test_a_body_that_is_not_gzip_but_says_so_is_a_400(make_rig: RigFactory) -> None:
    rig = await make_rig()
    headers = [
        (b"Authorization", f"Bearer {CLIENT_KEY}".encode()),
        (b"Content-Encoding", b"gzip"),
    ]
    answer = await send_raw(rig, b"this is not gzip at all", headers=headers)
    assert_refused(rig, answer, 400, "invalid_body_encoding")


async def test_a_real_gzip_body_is_served(make_rig: RigFactory) -> None:
    rig = await make_rig()
    headers = [
        (b"Authorization", f"Bearer {CLIENT_KEY}".encode()),
        (b"Content-Encoding", b"gzip"),
    ]
    answer = await send_raw(rig, gzip.compress(raw_chat()), headers=headers)
    assert answer.status == 200


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (raw_chat().decode().encode("utf-16"), "UTF-16"),  # with its byte order mark
        (raw_chat().decode().encode("utf-16-le"), "UTF-16-LE"),
        (raw_chat().decode().encode("utf-16-be"), "UTF-16-BE"),
        (raw_chat().decode().encode("utf-32"), "UTF-32"),
        (raw_chat().decode().encode("utf-32-le"), "UTF-32-LE"),
        (b"\xef\xbb\xbf" + raw_chat(), "byte order mark"),
        (raw_chat(content="caf\xe9").decode().encode("latin-1"), "not valid UTF-8"),
    ],
)
async def test_a_body_that_is_not_utf8_is_a_400(
    make_rig: RigFactory, body: bytes, words: str
) -> None:
    rig = await make_rig()
    error = assert_refused(rig, await send_raw(rig, body), 400, "invalid_encoding")
    assert words in error["message"]


@pytest.mark.parametrize(
    "extra",
    [
        ', "temperature": NaN',
        ', "temperature": Infinity',
        ', "temperature": -Infinity',
        ', "temperature": 1e999',
        ', "top_p": -1e999',
        ', "logit_bias": {"50256": [1, 2, NaN]}',
    ],
)
async def test_non_finite_numbers_are_a_400(make_rig: RigFactory, extra: str) -> None:
    rig = await make_rig()
    error = assert_refused(rig, await send_raw(rig, raw_chat(extra)), 400, "invalid_json")
    assert "finite" in error["message"]


@pytest.mark.parametrize("depth", [65, 600, 5000])
async def test_nesting_deeper_than_the_limit_is_a_400(make_rig: RigFactory, depth: int) -> None:
    rig = await make_rig()
    error = assert_refused(rig, await send_raw(rig, nested(depth)), 400, "nesting_too_deep")
    assert "64" in error["message"]
    assert len(rig.sink.exchanges) == 0


async def test_nesting_at_the_limit_is_served_and_recorded(make_rig: RigFactory) -> None:
    rig = await make_rig()
    answer = await send_raw(rig, nested(64))
    assert answer.status == 200
    assert len(await rig.exchanges(1)) == 1


async def test_the_depth_limit_is_a_setting(make_rig: RigFactory) -> None:
    rig = await make_rig(limits={"max_json_depth": 8})
    assert_refused(rig, await send_raw(rig, nested(9)), 400, "nesting_too_deep")


# -- 3. SDK-side options smuggled in the body --------------------------------------------------


async def test_sdk_options_in_the_body_reach_no_upstream(make_rig: RigFactory) -> None:
    rig = await make_rig()
    client = rig.client()
    smuggled = {
        "extra_headers": {"Authorization": "Bearer sk-smuggled"},
        "extra_query": {"api-version": "evil"},
        "extra_body": {"api_base": "http://127.0.0.1:9/v1"},
        "url": "http://127.0.0.1:9/v1/chat/completions",
        "headers": {"Host": "evil.example"},
    }
    answer = await client.chat.completions.create(**chat(), extra_body=smuggled)
    assert answer.choices[0].message.content
    await rig.exchanges(1)
    seen = rig.primary.requests + rig.candidate.requests
    assert {r.path for r in seen} == {"/v1/chat/completions"} and len(seen) == 2
    for request in seen:
        assert not set(smuggled) & set(request.body)
        assert "sk-smuggled" not in request.raw_body.decode()
        assert request.query == {}
    await client.close()


# -- 4. the recorder's callback ----------------------------------------------------------------


class ExplodingSink(InMemorySink):
    """A sink that fails with the prompt in its error, as a careless one might."""

    def put(self, exchange: Exchange) -> None:
        raise RuntimeError(f"cannot store {exchange.request}")


async def test_a_failing_sink_in_the_done_callback_is_counted_and_logged_without_the_record(
    make_rig: RigFactory,
) -> None:
    rig = await make_rig()
    rig.sink.__class__ = ExplodingSink  # the sink the proxy was built with now fails on put
    loop = asyncio.get_running_loop()
    unhandled: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: unhandled.append(context))
    rig.candidate.first_byte_delay_s = (
        0.2  # the shadow ends after the client's answer: a done-callback
    )
    try:
        client = rig.client()
        await client.chat.completions.create(**chat(SECRET_PROMPT))
        deadline = loop.time() + 5
        while rig.metric("understudy_sink_dropped_total") < 1 and loop.time() < deadline:
            await asyncio.sleep(0.02)
        await client.close()
    finally:
        loop.set_exception_handler(None)
    assert rig.metric("understudy_sink_dropped_total") == 1
    assert unhandled == []
    dropped = [e for e in rig.log_events() if e.get("event") == "exchange_dropped"]
    assert len(dropped) == 1 and dropped[0]["error"] == "RuntimeError"
    assert SECRET_PROMPT not in rig.logs.getvalue()
    # The exchange's own log line still went out.
    assert any(e.get("event") == "exchange" for e in rig.log_events())


def test_reprs_show_ids_not_prompts_or_answers() -> None:
    parsed = parse_request(Route.CHAT, json.dumps(chat(SECRET_PROMPT)).encode(), Limits())
    flag = shadow_flag()
    decision = decide(flag, "user:x", primary="openai", shadow_draw=0.0, noise_draw=0.0)
    record = ExchangeRecord(uuid.uuid4(), datetime.now(UTC), parsed, "h", decision)
    capture = Capture()
    capture.add(f'{{"answer": "{SECRET_PROMPT}"}}'.encode())
    record.arms.append(Arm("openai", Role.SERVED, "m", capture))
    for shown in (repr(record), repr(record.arms[0]), repr(capture), repr(parsed), str(record)):
        assert SECRET_PROMPT not in shown
    assert str(record.id) in repr(record)
