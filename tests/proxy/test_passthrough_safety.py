"""The pass-through reaches only the primary's base path, whatever the client spells.

The primary here is a trap: a raw socket server that records the request line of
everything it receives, so nothing is normalized or lost on its side. Attacks go
out on raw sockets, so no client library tidies them up first.
"""

from __future__ import annotations

import asyncio
import io
import json
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from openai import AsyncOpenAI
from prometheus_client import CollectorRegistry

from core import FlagState, Route
from core.memory_sink import InMemorySink
from proxy.app import create_proxy_app
from proxy.config import Limits, UpstreamConfig
from proxy.upstream_set import UpstreamSet
from storage.redaction import redact_secrets
from tests.fakes import FakeOpenAI, running
from tests.proxy.conftest import CLIENT_KEY, Rig, RigFactory
from understudy.logs import configure_logging
from understudy.server import start_site
from understudy.settings import LogFormat

OPERATOR_KEY = "sk-operator-canary-90e1c4"


@dataclass(frozen=True)
class Received:
    method: str
    target: str  # the raw request target, as it arrived on the socket
    authorization: str | None


class Trap:
    """A primary that answers every request with a small JSON list, recording it first."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                method, target, _version = line.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                while (header := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = header.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0"))
                if length:
                    await reader.readexactly(length)
                self.received.append(Received(method, target, headers.get("authorization")))
                body = json.dumps({"object": "list", "data": [], "path": target}).encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
                )
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            writer.close()


@dataclass(frozen=True)
class RawAnswer:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


async def send_raw(
    base: str, method: str, target: str, body: bytes = b"", extra_headers: bytes = b""
) -> RawAnswer:
    """One request with exactly this request line; Connection: close, read to the end."""
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    head = (
        f"{method} {target} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {CLIENT_KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    writer.write(head.encode("latin-1")[:-2] + extra_headers + b"\r\n" + body)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), timeout=10)
    writer.close()
    raw_head, _, payload = data.partition(b"\r\n\r\n")
    status_line, *header_lines = raw_head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        payload = _unchunk(payload)
    return RawAnswer(int(status_line.split(" ")[1]), headers, payload)


def _unchunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        out, data = out + data[:size], data[size + 2 :]
    return out


def assert_openai_refusal(answer: RawAnswer) -> None:
    assert 400 <= answer.status < 500, answer
    error = answer.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"] and "Traceback" not in error["message"]
    assert CLIENT_KEY not in error["message"] and OPERATOR_KEY not in error["message"]
    assert answer.headers["x-understudy-served-by"] == "understudy"
    assert len(answer.headers["x-understudy-request-id"]) == 36
    assert "x-understudy-exchange-id" not in answer.headers


ATTACKS = [
    ("GET", "/v1/../api/pull"),
    ("POST", "/v1/../api/pull"),
    ("POST", "/v1/%2e%2e/api/pull"),
    ("POST", "/v1/%2E%2E/api/pull"),
    ("POST", "/v1/%2e%2E/api/pull"),
    ("DELETE", "/v1/%2E%2E/%2E%2E/api/delete"),
    ("GET", "/v1/models%3F/../../etc/passwd"),
    ("GET", "/v1/models%3f/x"),
    ("GET", "/v1/models%23/x"),
    ("GET", "/v1/./models"),
    ("GET", "/v1/%2e/models"),
    ("GET", "/v1//models"),
    ("GET", "/v1/models/"),
    ("GET", "/v1/"),
    ("GET", "/v1/models/..%2f..%2fapi"),
    ("GET", "/v1/models/..%2F..%2Fapi"),
    ("GET", "/v1/models%2F..%2F..%2Fapi%2Fpull"),
    ("GET", "/v1/%252e%252e/api/pull"),
    ("GET", "/v1/%25252e%25252e/api/pull"),
    ("GET", "/v1/.%2e/api/pull"),
    ("GET", "/v1/%2e./api/pull"),
    ("GET", "/v1/..;/api/pull"),
    ("GET", "/v1/..%3b/api/pull"),
    ("GET", "/v1/..%5capi"),
    ("GET", "/v1/..%5Capi%5Cpull"),
    ("GET", "/v1/..\\api"),
    ("GET", "/v1/%00"),
    ("GET", "/v1/models%00.json"),
    ("GET", "/v1/models%0d%0aX-Injected:%20yes"),
    ("GET", "/v1/models%7f"),
    ("GET", "/v1/%c0%ae%c0%ae/api/pull"),
    ("GET", "/v1/%"),
    ("GET", "/v1/%zz"),
    ("GET", "/v1/models%2"),
    ("GET", "/v1/models#/../../api/pull"),
    ("GET", "/v1/models?x=1#frag"),
    ("GET", "/v1/caf\u00e9"),
    ("GET", "http://evil.example/v1/models"),
    ("GET", "http://evil.example/v1/../api/pull"),
    # Mirrored routes in another spelling: never served unrecorded.
    ("POST", "/v1/chat%2fcompletions"),
    ("POST", "/v1/chat%2Fcompletions"),
    ("POST", "/v1/Chat/Completions"),
    ("POST", "/v1/CHAT/COMPLETIONS"),
    ("POST", "/v1/chat/completions/"),
    ("POST", "/v1/chat//completions"),
    ("POST", "/v1/./chat/completions"),
    ("POST", "/v1/x/../chat/completions"),
    ("POST", "/v1/embeddings/"),
    ("POST", "/v1/Completions"),
    ("POST", "/v1/chat%252fcompletions"),
    # Methods outside the allow-list.
    *[(m, "/v1/models") for m in ("PUT", "PATCH", "TRACE", "OPTIONS", "HEAD", "PROPFIND")],
    ("PUT", "/v1/chat/completions"),
]


@pytest.fixture
async def trapped(make_rig: RigFactory) -> Any:
    trap = Trap()
    url = await trap.start()
    rig = await make_rig(primary={"base_url": f"{url}/v1", "api_key": OPERATOR_KEY})
    yield rig, trap
    await trap.close()


async def test_traversal_corpus_never_leaves_the_base_path(trapped: tuple[Rig, Trap]) -> None:
    rig, trap = trapped
    for method, target in ATTACKS:
        answer = await send_raw(rig.proxy.url, method, target)
        if method == "HEAD":
            assert answer.status == 405 and answer.body == b"", (method, target)
        elif answer.status == 400 and "x-understudy-request-id" not in answer.headers:
            # Refused by the HTTP parser itself, before the app: still a 4xx, still nothing
            # forwarded. Only request lines that are not HTTP at all end here.
            assert target.startswith("http://") or "\\" in target or not target.isascii(), target
        else:
            assert_openai_refusal(answer)
        if answer.status == 405 and method != "HEAD":
            assert answer.headers["allow"] == "GET, POST, DELETE"
        assert trap.received == [], (method, target, trap.received)
    # Nothing else was touched either, and no exchange was recorded for any of it.
    assert rig.candidate.requests == [] and rig.ollama.requests == []
    assert len(rig.sink.exchanges) == 0


async def test_misspelled_mirrored_route_names_the_canonical_path(
    trapped: tuple[Rig, Trap],
) -> None:
    rig, trap = trapped
    for target in ("/v1/chat%2fcompletions", "/v1/Chat/Completions", "/v1/chat/completions/"):
        answer = await send_raw(rig.proxy.url, "POST", target, b'{"model": "gpt-4o-mini"}')
        assert answer.status == 400
        error = answer.json()["error"]
        assert error["code"] == "invalid_path"
        assert "/v1/chat/completions" in error["message"]
    assert trap.received == []


async def test_allowed_paths_reach_exactly_their_place(trapped: tuple[Rig, Trap]) -> None:
    rig, trap = trapped
    allowed = [
        ("GET", "/v1/models"),
        ("GET", "/v1/models/gpt-4o-mini"),
        ("GET", "/v1/models/ft:gpt-4o-mini:acme::abc123"),
        ("GET", "/v1/models/a%20b"),
        ("DELETE", "/v1/files/file-x"),
        ("GET", "/v1/files?purpose=fine-tune&after=file-1&limit=%2F"),
        ("GET", "/v1/chat/completions?limit=2"),  # stored completions: GET is not mirrored
        ("POST", "/v1/moderations"),
        ("GET", "/v1/models?q=..%2F..%2Fapi"),  # a query stays a query
        ("GET", "/v1/models?next=/../../api/pull"),
        ("GET", "/v1/..."),  # three dots are a name, not a dot segment
    ]
    for method, target in allowed:
        answer = await send_raw(rig.proxy.url, method, target)
        assert answer.status == 200, (method, target, answer)
        assert answer.headers["x-understudy-served-by"] == "openai"
    assert [(r.method, r.target) for r in trap.received] == allowed
    assert {r.authorization for r in trap.received} == {f"Bearer {OPERATOR_KEY}"}


async def test_pass_through_never_follows_a_redirect(make_rig: RigFactory) -> None:
    """A redirect from the primary goes back to the client; the operator's key stays home."""
    from aiohttp import web

    elsewhere = FakeOpenAI()

    async def redirect(_request: web.Request) -> web.Response:
        raise web.HTTPFound(f"{elsewhere_server.url}/v1/models")

    app = web.Application()
    app.router.add_get("/v1/models", redirect)
    async with running(elsewhere.app) as elsewhere_server, running(app) as primary:
        rig = await make_rig(primary={"base_url": f"{primary.url}/v1", "api_key": OPERATOR_KEY})
        answer = await send_raw(rig.proxy.url, "GET", "/v1/models")
        assert answer.status == 302
    assert elsewhere.requests == []


async def test_normal_pass_through_is_byte_for_byte(make_rig: RigFactory) -> None:
    rig = await make_rig()
    direct_base = rig.servers[0].url
    for method, target in [
        ("GET", "/v1/models"),
        ("GET", "/v1/models/gpt-4o-mini"),
        ("GET", "/v1/models/no-such-model"),
        ("DELETE", "/v1/files/x"),
        ("GET", "/v1/models?limit=2&order=asc"),
    ]:
        direct = await send_raw(direct_base, method, target)
        proxied = await send_raw(rig.proxy.url, method, target)
        assert (proxied.status, proxied.body) == (direct.status, direct.body), target
        assert proxied.headers["x-understudy-served-by"] == "openai"
        assert "x-understudy-exchange-id" not in proxied.headers
    client = AsyncOpenAI(base_url=rig.base_url, api_key=CLIENT_KEY, max_retries=0)
    assert [m.id for m in (await client.models.list()).data]
    await client.close()
    seen = [(r.method, r.path, r.query) for r in rig.primary.requests]
    assert ("GET", "/v1/models", {"limit": "2", "order": "asc"}) in seen
    assert ("DELETE", "/v1/files/x", {}) in seen


async def test_bad_bodies_and_headers_get_openai_errors_not_500s(make_rig: RigFactory) -> None:
    rig = await make_rig(limits={"max_body_bytes": 2048})
    too_big = await send_raw(rig.proxy.url, "POST", "/v1/moderations", b"x" * 4096)
    assert too_big.status == 413 and too_big.json()["error"]["code"] == "request_too_large"
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            rig.base_url + "/moderations",
            data=b"not gzip at all",
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        ) as r,
    ):
        assert r.status == 400
        assert (await r.json())["error"]["code"] == "invalid_body_encoding"
    assert rig.primary.requests == []


async def test_router_errors_are_openai_shaped(make_rig: RigFactory) -> None:
    rig = await make_rig()
    not_found = await send_raw(rig.proxy.url, "GET", "/api/pull")
    assert not_found.status == 404 and not_found.json()["error"]["code"] == "unknown_url"
    wrong_method = await send_raw(rig.proxy.url, "POST", "/healthz")
    assert wrong_method.status == 405
    assert wrong_method.json()["error"]["code"] == "method_not_allowed"
    assert "GET" in wrong_method.headers["allow"]
    for answer in (not_found, wrong_method):
        assert_openai_refusal(answer)
    assert rig.primary.requests == []


class BrokenFlags:
    """A flag source that fails with a message quoting what it was given."""

    def current(self, route: Route) -> FlagState:
        raise RuntimeError(f"flag lookup failed for {route}: {SECRET_PROMPT}")


SECRET_PROMPT = "the launch code is 0000-canary"


async def test_internal_error_is_a_500_in_shape_logged_without_body_or_message() -> None:
    primary = FakeOpenAI()
    logs = io.StringIO()
    configure_logging("info", LogFormat.JSON, stream=logs, cache=False)
    async with running(primary.app) as upstream:
        app = create_proxy_app(
            upstreams=UpstreamSet.build(
                UpstreamConfig(name="openai", base_url=f"{upstream.url}/v1"), []
            ),
            flags=BrokenFlags(),
            sink=InMemorySink(),
            registry=CollectorRegistry(),
            limits=Limits(),
            redact=redact_secrets,
        )
        site = await start_site(app, "127.0.0.1", 0)
        try:
            body = json.dumps(
                {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": SECRET_PROMPT}]}
            ).encode()
            answer = await send_raw(site.url, "POST", "/v1/chat/completions", body)
        finally:
            await site.stop()
    assert answer.status == 500
    assert answer.json()["error"]["code"] == "proxy_internal_error"
    assert SECRET_PROMPT not in answer.body.decode()
    lines = [json.loads(line) for line in logs.getvalue().splitlines() if line.strip()]
    [line] = [e for e in lines if e["event"] == "internal_error"]
    assert line["error"] == "RuntimeError" and line["request_id"]
    assert SECRET_PROMPT not in logs.getvalue()


async def test_unsendable_forwarded_header_is_a_400(trapped: tuple[Rig, Trap]) -> None:
    rig, trap = trapped
    for header in (b"OpenAI-Organization: caf\xc3\xa9\r\n", b"OpenAI-Beta: a\x01b\r\n"):
        answer = await send_raw(rig.proxy.url, "GET", "/v1/models", extra_headers=header)
        assert answer.status == 400, header
        if "x-understudy-request-id" in answer.headers:  # not refused by the parser itself
            assert_openai_refusal(answer)
            assert answer.json()["error"]["code"] == "invalid_header"
    assert trap.received == []
