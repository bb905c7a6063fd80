"""The HTTP layer's own limits, over raw sockets: what a client normalizes is sent as is.

Malformed, oversized and slow request heads are answered in OpenAI's error shape
(431, 414, 400, 408) without quoting the offending bytes, and logged as one JSON line.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web

from proxy.config import Limits
from understudy.logs import configure_logging
from understudy.server import RunningSite, start_site
from understudy.settings import LogFormat

CANARY = "sk-canary-9f2c41d7e8b3a6c5"
LIMITS = Limits(max_header_bytes=1024, max_headers=20, header_timeout_s=1.0)


@dataclass
class Served:
    site: RunningSite
    logs: io.StringIO

    @property
    def port(self) -> int:
        return int(self.site.url.rsplit(":", 1)[1])

    def log_events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.logs.getvalue().splitlines()]


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def error(self) -> dict[str, Any]:
        assert self.headers["content-type"].startswith("application/json")
        payload: dict[str, Any] = json.loads(self.body)
        assert set(payload["error"]) == {"message", "type", "param", "code"}
        error: dict[str, Any] = payload["error"]
        return error


async def echo(request: web.Request) -> web.Response:
    body = await request.read()
    return web.json_response({"received": len(body)})


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    logs = io.StringIO()
    configure_logging("info", LogFormat.JSON, stream=logs, cache=False)
    app = web.Application()
    app.router.add_route("*", "/v1/echo", echo)
    site = await start_site(app, "127.0.0.1", 0, limits=LIMITS)
    yield Served(site, logs)
    await site.stop()


def parse_reply(raw: bytes) -> Reply:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Reply(int(status_line.split()[1]), headers, body)


async def send_raw(port: int, data: bytes, timeout: float = 5.0) -> Reply:
    """Send ``data``, read until the server closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()
    return parse_reply(raw)


def request(*headers: bytes, target: bytes = b"/v1/echo", method: bytes = b"GET") -> bytes:
    lines = [method + b" " + target + b" HTTP/1.1", b"Host: x", *headers, b"Connection: close"]
    return b"\r\n".join(lines) + b"\r\n\r\n"


async def test_a_well_formed_request_is_served(served: Served) -> None:
    reply = await send_raw(served.port, request())
    assert reply.status == 200 and json.loads(reply.body) == {"received": 0}


async def test_a_header_over_the_size_limit_is_431(served: Served) -> None:
    reply = await send_raw(served.port, request(b"X-Big: " + b"a" * 2000))
    assert reply.status == 431
    error = reply.error()
    assert error["code"] == "request_header_too_large" and "1024" in error["message"]
    assert b"aaaa" not in reply.body


async def test_too_many_headers_is_431(served: Served) -> None:
    headers = [b"X-H%d: v" % i for i in range(30)]
    reply = await send_raw(served.port, request(*headers))
    assert reply.status == 431
    assert reply.error()["code"] == "too_many_headers"


async def test_up_to_the_header_limits_is_served(served: Served) -> None:
    headers = [b"X-H%d: v" % i for i in range(LIMITS.max_headers - 3)]  # Host, Connection, X-Big
    reply = await send_raw(served.port, request(*headers, b"X-Big: " + b"a" * 900))
    assert reply.status == 200


async def test_a_request_line_over_the_limit_is_414(served: Served) -> None:
    reply = await send_raw(served.port, request(target=b"/v1/" + b"a" * 3000))
    assert reply.status == 414
    assert reply.error()["code"] == "request_line_too_long"


async def test_a_malformed_header_line_is_400_and_its_key_is_never_quoted(served: Served) -> None:
    bad = f"Authorization Bearer {CANARY}".encode()  # no colon: not a header
    reply = await send_raw(served.port, request(bad))
    assert reply.status == 400
    assert reply.error()["type"] == "invalid_request_error"
    assert CANARY.encode() not in reply.body and b"canary" not in reply.body
    assert CANARY not in served.logs.getvalue()
    [rejected] = [e for e in served.log_events() if e["event"] == "http_request_rejected"]
    assert rejected["status"] == 400 and rejected["level"] == "warning"


async def test_a_malformed_header_value_holding_a_key_is_not_quoted(served: Served) -> None:
    bad = f"X-Key: {CANARY}\x01".encode()  # a control byte in the value
    reply = await send_raw(served.port, request(bad))
    assert reply.status == 400
    assert b"canary" not in reply.body
    assert "canary" not in served.logs.getvalue()


async def test_an_invalid_method_is_400(served: Served) -> None:
    reply = await send_raw(served.port, request(method=b"G(T"))
    assert reply.status == 400
    assert reply.error()["code"] == "invalid_method"
    assert b"G(T" not in reply.body


@pytest.mark.parametrize("version", [b"HTTP/9.7", b"HTXP/1.1", b"HTTP/1"])
async def test_an_invalid_http_version_is_400(served: Served, version: bytes) -> None:
    data = b"GET /v1/echo " + version + b"\r\nHost: x\r\n\r\n"
    reply = await send_raw(served.port, data)
    assert reply.status == 400
    assert reply.error()["code"] in {"invalid_request_line", "bad_request"}


async def test_every_rejection_is_one_json_log_line(served: Served) -> None:
    await send_raw(served.port, request(b"X-Big: " + b"a" * 2000))
    await send_raw(served.port, request(method=b"G(T"))
    lines = served.logs.getvalue().splitlines()
    assert len([json.loads(line) for line in lines]) == len(lines) >= 2


async def test_a_slowloris_head_is_answered_408_and_closed_while_others_are_served(
    served: Served,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    started = time.monotonic()
    received = bytearray()

    async def collect() -> float:
        """Read as the server writes (a later write of ours may reset the connection)."""
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(4096):
                received.extend(chunk)
        return time.monotonic() - started

    async def dribble() -> None:
        for byte in request(b"X-Slow: " + b"z" * 200):  # one byte every 50 ms: ~13 s in all
            if closed.done():
                return
            with contextlib.suppress(ConnectionError):
                writer.write(bytes([byte]))
            await asyncio.sleep(0.05)

    closed = asyncio.create_task(collect())
    dribbling = asyncio.create_task(dribble())
    served_meanwhile = 0
    while not closed.done() and time.monotonic() - started < 5:
        reply = await send_raw(served.port, request())
        assert reply.status == 200
        served_meanwhile += 1
        await asyncio.sleep(0.1)
    closed_after = await asyncio.wait_for(closed, 5)
    await dribbling
    writer.close()

    reply = parse_reply(bytes(received))
    assert reply.status == 408
    assert reply.error()["code"] == "request_timeout"
    assert reply.headers["connection"] == "close"
    assert LIMITS.header_timeout_s * 0.9 <= closed_after < LIMITS.header_timeout_s * 4
    assert served_meanwhile >= 3
    [timeout] = [e for e in served.log_events() if e["event"] == "http_request_head_timeout"]
    assert timeout["status"] == 408


async def test_an_idle_connection_gets_408_after_the_timeout(served: Served) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    raw = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert parse_reply(raw).status == 408


async def test_keep_alive_heads_are_timed_from_the_previous_response(served: Served) -> None:
    """Three requests 0.6 s apart on one connection: 1.8 s in all, each head in time."""
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    keep_alive = b"GET /v1/echo HTTP/1.1\r\nHost: x\r\n\r\n"
    for _ in range(3):
        await asyncio.sleep(0.6)
        writer.write(keep_alive)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200")
        length = int(parse_reply(head).headers["content-length"])
        await reader.readexactly(length)
    # Then nothing: the next head's deadline passes and the server closes.
    raw = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert parse_reply(raw).status == 408


async def test_a_slow_body_is_not_cut_by_the_head_deadline(served: Served) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    writer.write(
        b"POST /v1/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\n"
    )
    await asyncio.sleep(LIMITS.header_timeout_s * 1.5)
    writer.write(b"hello")
    raw = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    reply = parse_reply(raw)
    assert reply.status == 200 and json.loads(reply.body) == {"received": 5}
