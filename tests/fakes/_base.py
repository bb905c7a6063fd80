"""What every fake upstream shares: the request log, faults, delays and writers.

A flavour (OpenAI, Ollama) subclasses `FakeUpstream`, adds its routes in
`_add_routes` and says how its errors and garbage look. The middleware records
each request before anything else happens, so even a request that is refused,
hung or reset shows up in `requests`.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

FAULT_HEADER = "x-fake-fault"

# Short, so closing a server with a hung request in flight does not stall a test.
SHUTDOWN_TIMEOUT_S = 0.1
# How often a hung handler checks whether its client has gone.
_DISCONNECT_POLL_S = 0.02


class Fault(StrEnum):
    """Faults a test can switch on with `fake.fault = ...` or the x-fake-fault header."""

    HANG = "hang"  # never answer
    SLOW_FIRST_BYTE = "slow_first_byte"  # wait `slow_first_byte_s` before the headers
    HTTP_500 = "http_500"  # error JSON with status 500
    HTTP_429 = "http_429"  # rate-limit error JSON with status 429
    GARBAGE_JSON = "garbage_json"  # status 200, body (or stream line) is not JSON
    CUT_STREAM = "cut_stream"  # send `cut_after_chunks` writes, then close the socket
    HUGE_LINE = "huge_line"  # one stream line carrying `huge_line_bytes` of content
    RESET = "reset"  # close the socket (TCP RST) without answering
    STALL = "stall"  # send `stall_after_chunks` writes, then go silent with the socket open


_FAULT_NAMES = frozenset(fault.value for fault in Fault)


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: CIMultiDictProxy[str]  # case-insensitive: headers["authorization"]
    raw_body: bytes
    body: Any  # parsed JSON; None when the body is empty or not JSON
    received_at: float  # time.monotonic()


@dataclass(frozen=True)
class Cancellation:
    """A request whose client went away before the answer was complete."""

    request: RecordedRequest
    at: float  # time.monotonic() when the fake noticed


_RECORD = web.RequestKey("fake_record", RecordedRequest)
_FAULT = web.RequestKey("fake_fault", str)
# Set when the fake itself drops the connection, so that is not counted as a
# client cancellation.
_DROPPED_BY_US = web.RequestKey("fake_dropped", bool)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class FakeUpstream:
    """Base of the fakes. Every attribute may be changed while the server runs.

    requests            every request received, in order (RecordedRequest)
    cancelled           requests whose client left mid-flight (Cancellation)
    fault               a Fault for every request, or None; the x-fake-fault
                        header overrides it per request ("none" clears it)
    expected_api_key    when set, other Bearer keys (or none) get a 401
    first_byte_delay_s  pause before the response headers
    token_delay_s       pause per generated token (between stream lines)
    slow_first_byte_s   pause before the headers under slow_first_byte
    cut_after_chunks    lines sent before the socket closes under cut_stream
    huge_line_bytes     size of the content under huge_line
    stall_after_chunks  lines sent before going silent under stall (0: headers only;
                        a JSON answer sends half its body when above 0)
    """

    stream_content_type = "text/event-stream; charset=utf-8"

    def __init__(
        self,
        *,
        expected_api_key: str | None,
        token_delay_s: float,
        first_byte_delay_s: float,
    ) -> None:
        self.expected_api_key = expected_api_key
        self.token_delay_s = token_delay_s
        self.first_byte_delay_s = first_byte_delay_s
        self.fault: Fault | str | None = None
        self.slow_first_byte_s = 2.0
        self.cut_after_chunks = 2
        self.huge_line_bytes = 2 * 1024 * 1024
        self.stall_after_chunks = 1
        self.requests: list[RecordedRequest] = []
        self.cancelled: list[Cancellation] = []
        self._transports: set[asyncio.BaseTransport] = set()

    # -- public helpers -------------------------------------------------

    @property
    def app(self) -> web.Application:
        """A fresh aiohttp app serving this fake's state. Fresh each time because an
        app is bound to the first event loop that runs it, and a test may restart
        the upstream."""

        @web.middleware
        async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
            return await self._middleware(request, handler)

        app = web.Application(middlewares=[middleware])
        self._add_routes(app.router)
        return app

    @property
    def open_connections(self) -> int:
        """Connections that carried a request and are still open."""
        self._transports = {t for t in self._transports if not t.is_closing()}
        return len(self._transports)

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path]

    def clear(self) -> None:
        """Forget recorded requests and cancellations, and switch faults off."""
        self.requests.clear()
        self.cancelled.clear()
        self.fault = None

    # -- flavour hooks --------------------------------------------------

    def _add_routes(self, router: web.UrlDispatcher) -> None:
        raise NotImplementedError

    def error_response(
        self,
        status: int,
        message: str,
        *,
        type_: str,
        code: str | None = None,
        param: str | None = None,
    ) -> web.Response:
        raise NotImplementedError

    def garbage_response(self, streaming: bool) -> web.Response:
        raise NotImplementedError

    def wants_stream(self, record: RecordedRequest) -> bool:
        raise NotImplementedError

    def auth_error(self, given: str | None) -> web.Response:
        raise NotImplementedError

    def encode_json(self, payload: Any) -> bytes:
        raise NotImplementedError

    def response_headers(self) -> dict[str, str]:
        return {}

    # -- middleware: record, authorise, inject faults ---------------------

    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.transport is not None:
            self._transports.add(request.transport)
        record = await self._record(request)
        try:
            refused = self._check_auth(request)
            if refused is not None:
                return refused
            # The header, when sent, wins over the fake-wide setting; "none" clears it.
            fault = request.headers.get(FAULT_HEADER, self.fault or "")
            fault = "" if fault == "none" else fault
            if fault and fault not in _FAULT_NAMES:
                return self.error_response(
                    400, f"unknown fault {fault!r}", type_="invalid_request_error"
                )
            request[_FAULT] = fault
            early = await self._early_fault(request, record, fault)
            return early if early is not None else await handler(request)
        except asyncio.CancelledError:
            self._note_cancelled(request, record)
            raise
        except ConnectionResetError:
            self._note_cancelled(request, record)
            # The client is gone; aiohttp quietly fails to send this and moves on.
            return web.Response()

    async def _record(self, request: web.Request) -> RecordedRequest:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        record = RecordedRequest(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers=CIMultiDictProxy(CIMultiDict(request.headers)),
            raw_body=raw,
            body=body,
            received_at=time.monotonic(),
        )
        self.requests.append(record)
        request[_RECORD] = record
        return record

    def _note_cancelled(self, request: web.Request, record: RecordedRequest) -> None:
        if not request.get(_DROPPED_BY_US):
            self.cancelled.append(Cancellation(request=record, at=time.monotonic()))

    def _check_auth(self, request: web.Request) -> web.Response | None:
        if self.expected_api_key is None:
            return None
        header = request.headers.get("Authorization", "")
        given = header[len("Bearer ") :] if header.startswith("Bearer ") else None
        return None if given == self.expected_api_key else self.auth_error(given or None)

    async def _early_fault(
        self, request: web.Request, record: RecordedRequest, fault: str
    ) -> web.StreamResponse | None:
        """Faults that replace the whole answer; stream-shaped ones live in the writers."""
        if fault == Fault.HANG:
            await _wait_for_disconnect(request)
        if fault == Fault.RESET:
            return self._drop(request, None, reset=True)
        if fault == Fault.HTTP_500:
            return self.error_response(
                500,
                "The server had an error while processing your request. Sorry about that!",
                type_="server_error",
            )
        if fault == Fault.HTTP_429:
            return self.error_response(
                429,
                "Rate limit reached for requests. Please try again in 1s.",
                type_="requests",
                code="rate_limit_exceeded",
            )
        if fault == Fault.GARBAGE_JSON:
            return self.garbage_response(self.wants_stream(record))
        return None

    # -- writers used by the flavours --------------------------------------

    def record_of(self, request: web.Request) -> RecordedRequest:
        return request[_RECORD]

    def fault_of(self, request: web.Request) -> str:
        return str(request.get(_FAULT, ""))

    async def pause_before_first_byte(self, request: web.Request, extra_s: float = 0.0) -> None:
        slow = self.fault_of(request) == Fault.SLOW_FIRST_BYTE
        delay = (self.slow_first_byte_s if slow else self.first_byte_delay_s) + extra_s
        if delay > 0:
            await asyncio.sleep(delay)

    async def send_json(
        self, request: web.Request, payload: Any, *, tokens: int = 0, status: int = 200
    ) -> web.StreamResponse:
        """Answer with one JSON body after the first-byte delay plus one token
        delay per generated token (a non-streamed answer takes as long as a streamed
        one). Under cut_stream only half of the body is sent."""
        await self.pause_before_first_byte(request, self.token_delay_s * tokens)
        body = self.encode_json(payload)
        headers = self.response_headers()
        if self.fault_of(request) == Fault.STALL:
            resp = web.StreamResponse(status=status, headers=headers)
            resp.content_type = "application/json"
            resp.content_length = len(body)
            await resp.prepare(request)
            if self.stall_after_chunks > 0:
                await resp.write(body[: len(body) // 2])
            await _wait_for_disconnect(request)
        if self.fault_of(request) != Fault.CUT_STREAM:
            return web.Response(
                body=body, status=status, content_type="application/json", headers=headers
            )
        resp = web.StreamResponse(status=status, headers=headers)
        resp.content_type = "application/json"
        resp.content_length = len(body)
        await resp.prepare(request)
        await resp.write(body[: len(body) // 2])
        return self._drop(request, resp)

    async def send_stream(
        self, request: web.Request, steps: Sequence[Sequence[bytes]]
    ) -> web.StreamResponse:
        """Stream `steps`, each a group of lines written one `write` per line.

        `token_delay_s` passes before every step but the first (the opening lines)
        and the last (the closing lines), so the rhythm is one delay per token.
        Under cut_stream the socket closes after `cut_after_chunks` lines, always
        before the last line (the end marker).
        """
        await self.pause_before_first_byte(request)
        headers = {"Content-Type": self.stream_content_type, **self.response_headers()}
        resp = web.StreamResponse(headers=headers)
        await resp.prepare(request)
        total = sum(len(step) for step in steps)
        cut_at = (
            min(self.cut_after_chunks, total - 1)
            if self.fault_of(request) == Fault.CUT_STREAM
            else None
        )
        stall_at = self.stall_after_chunks if self.fault_of(request) == Fault.STALL else None
        written = 0
        if stall_at == 0:
            await _wait_for_disconnect(request)
        for number, step in enumerate(steps):
            if 0 < number < len(steps) - 1 and self.token_delay_s > 0:
                await asyncio.sleep(self.token_delay_s)
            for line in step:
                if written == cut_at:
                    return self._drop(request, resp)
                await resp.write(line)
                written += 1
                if written == stall_at:
                    await _wait_for_disconnect(request)
        return resp

    def _drop(
        self, request: web.Request, resp: web.StreamResponse | None, *, reset: bool = False
    ) -> web.StreamResponse:
        """Close the connection from our side: FIN after what was sent, or RST."""
        request[_DROPPED_BY_US] = True
        transport = request.transport
        if transport is not None:
            if reset:
                sock = transport.get_extra_info("socket")
                if sock is not None:
                    # Linger on with timeout 0 makes close() send RST instead of FIN.
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                transport.abort()
            else:
                transport.close()
        # aiohttp's attempt to finish this response hits the closed transport and
        # is dropped silently as a premature disconnect.
        return resp if resp is not None else web.Response()


async def _wait_for_disconnect(request: web.Request) -> None:
    """Park until the client goes away, then raise like a failed write would.

    Under our runners (handler_cancellation=True) the handler is cancelled as soon
    as the client disconnects; polling the transport keeps `hang` honest under any
    other runner too.
    """
    while request.transport is not None and not request.transport.is_closing():
        await asyncio.sleep(_DISCONNECT_POLL_S)
    raise ConnectionResetError("client disconnected")
