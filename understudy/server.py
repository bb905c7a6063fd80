"""Running an aiohttp app on a socket, with graceful shutdown on SIGTERM/SIGINT.

The HTTP layer itself is hardened: aiohttp's protocol handler answers malformed
requests in plain text and waits forever for a request head. ``LimitedRequestHandler``
answers them in OpenAI's error shape (431, 414, 400, 408), never quoting the offending
bytes, and closes connections that do not deliver a request head in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Coroutine
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import structlog
import uvloop
from aiohttp import web
from aiohttp.http_exceptions import (
    BadHttpMessage,
    BadHttpMethod,
    BadStatusLine,
    HttpProcessingError,
    InvalidHeader,
    LineTooLong,
)

from proxy.config import Limits
from proxy.errors import error_response
from understudy.logs import log_loop_exception, safe_text

log = structlog.get_logger("understudy.http")

# What aiohttp's parser says when a request has more headers than allowed.
_TOO_MANY_HEADERS = "Too many headers received"


@dataclass(frozen=True, slots=True)
class Rejection:
    """How a request the HTTP layer cannot parse is answered."""

    status: int
    message: str
    code: str
    error_type: str = "invalid_request_error"


def parser_reason(exc: HttpProcessingError) -> str:
    """The parser's reason without the bytes it quotes (they may hold a key or a prompt)."""
    text = exc.message.removeprefix("Bad status line:").strip()
    cut = min((i for i in (text.find(c) for c in ":'\"\n") if i >= 0), default=len(text))
    return safe_text(text[:cut].strip()[:100]) or type(exc).__name__


def rejection_for(
    exc: BaseException | None, status: int, limits: Limits, line_bytes: int
) -> Rejection:
    """The answer for a request aiohttp's protocol layer refused, or a handler's crash."""
    if isinstance(exc, LineTooLong):
        if line_bytes > limits.max_header_bytes:
            return Rejection(
                414,
                f"The request line is longer than {limits.max_header_bytes} bytes.",
                "request_line_too_long",
            )
        return Rejection(
            431,
            f"A request header is longer than {limits.max_header_bytes} bytes.",
            "request_header_too_large",
        )
    if isinstance(exc, BadHttpMessage) and exc.message == _TOO_MANY_HEADERS:
        return Rejection(
            431, f"The request has more than {limits.max_headers} headers.", "too_many_headers"
        )
    if isinstance(exc, BadHttpMethod):
        return Rejection(400, f"Invalid HTTP method ({parser_reason(exc)}).", "invalid_method")
    if isinstance(exc, BadStatusLine):
        return Rejection(
            400, f"Malformed request line ({parser_reason(exc)}).", "invalid_request_line"
        )
    if isinstance(exc, InvalidHeader):
        return Rejection(400, "Malformed request header.", "invalid_header")
    if isinstance(exc, HttpProcessingError):
        status = exc.code if 400 <= exc.code < 500 else 400
        reason = parser_reason(exc)
        if "header" in reason.lower():
            return Rejection(status, f"Malformed request header ({reason}).", "invalid_header")
        return Rejection(status, f"Malformed HTTP request ({reason}).", "bad_request")
    if status == HTTPStatus.GATEWAY_TIMEOUT:
        return Rejection(504, "The request timed out.", "timeout", "server_error")
    return Rejection(
        500,
        "The server had an error while processing your request.",
        "internal_error",
        "server_error",
    )


def raw_error_response(status: int, message: str, code: str) -> bytes:
    """A complete HTTP/1.1 error response in OpenAI's shape, closing the connection."""
    body = json.dumps(
        {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": None,
                "code": code,
            }
        }
    ).encode()
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class LimitedRequestHandler(web.RequestHandler):
    """aiohttp's protocol handler with header limits, a head deadline and OpenAI-shaped errors.

    The head deadline runs from the connection's start, and again from the end of each
    response on keep-alive, until a complete request head has been parsed.
    """

    def __init__(self, manager: web.Server, *, limits: Limits, **kwargs: Any) -> None:
        super().__init__(
            manager,
            max_line_size=limits.max_header_bytes,
            max_field_size=limits.max_header_bytes,
            max_headers=limits.max_headers,
            **kwargs,
        )
        self._limits = limits
        self._awaiting_head = False
        self._line_bytes = 0  # bytes of the request line seen so far: 414 vs 431
        self._line_done = False
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._await_head()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._awaiting_head:  # a body, or bytes after a complete head
            super().data_received(data)
            return
        if not self._line_done:
            end = data.find(b"\n")
            self._line_bytes += len(data) if end < 0 else end
            self._line_done = end >= 0
        parsed_before = self._request_count
        super().data_received(data)
        if self._request_count != parsed_before:  # a head (or a parse error) is complete
            self._awaiting_head = False
            self._stop_head_timer()

    async def finish_response(
        self, request: web.BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> tuple[web.StreamResponse, bool]:
        result = await super().finish_response(request, resp, start_time)
        if not self._messages:  # nothing pipelined already: the next head's clock starts now
            self._await_head()
        return result

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        rejection = rejection_for(exc, status, self._limits, self._line_bytes)
        parse_error = isinstance(exc, HttpProcessingError)
        log.warning(
            "http_request_rejected",
            status=rejection.status,
            code=rejection.code,
            error=type(exc).__name__ if exc is not None else None,
            peer=request.remote,
            # A parse error's text quotes the request; a handler's crash needs its traceback.
            exc_info=None if parse_error else exc,
        )
        if request.writer.output_size > 0:  # a response was under way: nothing can follow it
            raise ConnectionError("a response was already started; closing the connection")
        resp = error_response(
            rejection.status,
            rejection.message,
            error_type=rejection.error_type,
            code=rejection.code,
        )
        resp.force_close()
        return resp

    def _await_head(self) -> None:
        self._stop_head_timer()
        self._awaiting_head = True
        self._line_bytes = 0
        self._line_done = False
        self._head_timer = self._loop.call_later(
            self._limits.header_timeout_s, self._on_head_timeout
        )

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _on_head_timeout(self) -> None:
        self._head_timer = None
        transport = self.transport
        if transport is None or self._force_close or not self._awaiting_head:
            return
        log.warning(
            "http_request_head_timeout",
            status=408,
            timeout_s=self._limits.header_timeout_s,
            peer=_host_of(self.peername),
        )
        transport.write(
            raw_error_response(
                408,
                f"The request head was not received within {self._limits.header_timeout_s:g} s.",
                "request_timeout",
            )
        )
        self.force_close()  # the transport sends what it holds, then closes


def _host_of(peername: object) -> object:
    return peername[0] if isinstance(peername, tuple) else peername


class LimitedServer(web.Server):
    """aiohttp's low-level server, making ``LimitedRequestHandler`` connections."""

    def __init__(
        self,
        handler: Any,
        *,
        limits: Limits,
        handler_kwargs: dict[str, Any],
        **kwargs: Any,
    ) -> None:
        super().__init__(handler, **kwargs)
        self._limits = limits
        self._handler_kwargs = handler_kwargs

    def __call__(self) -> web.RequestHandler:
        return LimitedRequestHandler(
            self, loop=asyncio.get_running_loop(), limits=self._limits, **self._handler_kwargs
        )


class LimitedAppRunner(web.AppRunner):
    """``AppRunner`` whose server is a ``LimitedServer``; the app's start-up/clean-up as usual."""

    def __init__(
        self,
        app: web.Application,
        *,
        limits: Limits,
        handler_cancellation: bool,
        shutdown_timeout: float,
        handler_kwargs: dict[str, Any],
    ) -> None:
        super().__init__(
            app,
            handler_cancellation=handler_cancellation,
            shutdown_timeout=shutdown_timeout,
            **handler_kwargs,
        )
        self._limits = limits
        self._handler_kwargs = handler_kwargs

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()  # runs the app's start-up
        return LimitedServer(
            plain.request_handler,
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            limits=self._limits,
            handler_kwargs=self._handler_kwargs,
        )


@dataclass
class RunningSite:
    runner: web.AppRunner
    url: str

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start_site(
    app: web.Application,
    host: str,
    port: int,
    *,
    shutdown_timeout: float = 10.0,
    limits: Limits | None = None,
    reuse_port: bool = False,
) -> RunningSite:
    """Start serving ``app``; port 0 picks a free port. The URL has no trailing slash.

    ``limits`` bounds request heads (size, count, time); the defaults when not given.
    ``reuse_port`` lets several processes listen on the same port (SO_REUSEPORT).
    """
    # Cancelling the handler when its client disconnects is what lets an
    # abandoned request cancel its upstream call at once.
    runner = LimitedAppRunner(
        app,
        limits=limits or Limits(),
        handler_cancellation=True,
        shutdown_timeout=shutdown_timeout,
        handler_kwargs={"access_log": None},
    )
    await runner.setup()
    site = web.TCPSite(
        runner, host, port, backlog=1024, reuse_address=True, reuse_port=reuse_port or None
    )
    await site.start()
    bound_port = runner.addresses[0][1]
    return RunningSite(runner, f"http://{host}:{bound_port}")


async def wait_for_stop_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def wait_for_stop_or_parent() -> None:
    """Return on SIGTERM or SIGINT, or when the parent closes our standard input or dies.

    For child processes whose parent stops them by closing their stdin (the lifeline).
    """
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    signals = asyncio.create_task(wait_for_stop_signal(), name="understudy-stop-signal")
    lifeline = asyncio.create_task(reader.read(), name="understudy-lifeline")
    try:
        await asyncio.wait([signals, lifeline], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (signals, lifeline):
            task.cancel()
        await asyncio.gather(signals, lifeline, return_exceptions=True)


async def _with_loop_exception_handler(main: Coroutine[Any, Any, int]) -> int:
    asyncio.get_running_loop().set_exception_handler(log_loop_exception)
    return await main


def run(main: Coroutine[Any, Any, int]) -> int:
    """Run ``main`` to completion on uvloop's faster event loop, its errors logged as JSON."""
    result: int = uvloop.run(_with_loop_exception_handler(main))
    return result
