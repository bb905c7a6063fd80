"""Every other /v1/* path goes to the primary only, streamed both ways.

The upstream URL is built from the raw request target, never from the decoded
path: aiohttp decodes ``%2F``, ``%2e`` and ``%5c`` before routing and resolves
no dot segments, so a decoded tail can hold ``..``, a backslash or a slash the
client escaped, which the upstream (or the client library) would resolve again.
Here every segment is checked as sent, and the URL is handed over already
encoded, so what reaches the primary is its base path plus the checked segments.
"""

from __future__ import annotations

import re
import string
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import unquote, unquote_to_bytes

import structlog
from aiohttp import web

from core import UpstreamError, UpstreamResponse
from proxy.body import read_body
from proxy.config import Limits
from proxy.errors import (
    RequestError,
    error_response,
    redacted_upstream_error,
    redacted_upstream_headers,
)
from proxy.exchange import PRIMARY_HEADERS
from proxy.relay import SERVED_BY_HEADER
from proxy.upstreams.port import ForwardRequest, Upstream

log = structlog.get_logger("understudy.passthrough")

API_PREFIX = "/v1/"
ALLOWED_METHODS = ("GET", "POST", "DELETE")
ALLOW_HEADER = ", ".join(ALLOWED_METHODS)

_FORWARDED = (*PRIMARY_HEADERS, "Content-Type", "Accept")
# RFC 3986 pchar: what a path segment may hold unescaped. Everything else (a
# backslash, a space, a control or non-ASCII character) is refused, not re-encoded.
_SEGMENT_CHARS = frozenset(string.ascii_letters + string.digits + "-._~!$&'()*+,;=:@%")
_ESCAPE = re.compile(r"%(?P<hex>[0-9A-Fa-f]{2})")
_ANY_PERCENT = re.compile(r"%")
# Escaped, these would turn into structure (a separator, a query, another escape) or
# into something no upstream should see in a path.
_FORBIDDEN_ESCAPED = frozenset(b"/\\?#%") | frozenset(range(0x20)) | {0x7F}
_QUERY_CHARS = frozenset(chr(c) for c in range(0x21, 0x7F)) - {"#"}
_DECODE_ROUNDS = 3  # enough to see through double and triple encoding when comparing


@dataclass(frozen=True, slots=True)
class Target:
    """A checked request target: segments under /v1/ and the query, both still encoded."""

    tail: str  # e.g. "models/gpt-4o-mini"
    query: str  # "" when there is none


def parse_target(raw_target: str, mirrored: Iterable[str]) -> Target:
    """The target the pass-through may forward, or RequestError (400, invalid_path)."""
    if "#" in raw_target:
        raise _invalid("A request target cannot carry a fragment ('#').")
    raw_path, _, query = raw_target.partition("?")
    canonical = _mirrored_spelling(raw_path, mirrored)
    if canonical is not None and raw_path != canonical:
        raise _invalid(
            f"This path names {canonical} in another spelling; send it to {canonical} exactly."
        )
    if not raw_path.startswith(API_PREFIX):  # absolute-form, "*", or "/v1%2F..."
        raise _invalid(f"The path must start with {API_PREFIX}.")
    for segment in raw_path[len(API_PREFIX) :].split("/"):
        _check_segment(segment)
    if any(c not in _QUERY_CHARS for c in query):
        raise _invalid("The query string holds a character that must be percent-encoded.")
    return Target(raw_path[len(API_PREFIX) :], query)


def _check_segment(segment: str) -> None:
    if not segment:
        raise _invalid("Empty path segments ('//' or a trailing '/') are not allowed.")
    if any(c not in _SEGMENT_CHARS for c in segment):
        raise _invalid("The path holds a character that must be percent-encoded.")
    if len(_ESCAPE.findall(segment)) != len(_ANY_PERCENT.findall(segment)):
        raise _invalid("The path holds a '%' that does not start a valid escape.")
    if any(int(m["hex"], 16) in _FORBIDDEN_ESCAPED for m in _ESCAPE.finditer(segment)):
        raise _invalid(
            "Percent-encoded '/', '\\', '?', '#', '%' or control characters are not "
            "allowed in the path."
        )
    decoded = unquote_to_bytes(segment)
    try:
        decoded.decode("utf-8")
    except UnicodeDecodeError:
        raise _invalid("The path's escapes do not decode to UTF-8.") from None
    # ";" starts path parameters on some servers, which then read "..;" as "..".
    if decoded.split(b";", 1)[0] in (b".", b".."):
        raise _invalid("Dot segments ('.' or '..') are not allowed in the path.")


def _mirrored_spelling(raw_path: str, mirrored: Iterable[str]) -> str | None:
    """The mirrored route this path would reach if a server normalized it, if any."""
    path = raw_path
    for _ in range(_DECODE_ROUNDS):
        path = unquote(path, errors="replace")
    resolved: list[str] = []
    for segment in path.replace("\\", "/").lower().split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if resolved:
                resolved.pop()
            continue
        resolved.append(segment)
    spelled = "/" + "/".join(resolved)
    return next((route for route in mirrored if route.lower() == spelled), None)


def _invalid(message: str) -> RequestError:
    return RequestError(400, message, code="invalid_path")


def method_not_allowed() -> web.Response:
    return error_response(
        405,
        f"This method is not allowed here; the pass-through accepts {ALLOW_HEADER}.",
        code="method_not_allowed",
        headers={"Allow": ALLOW_HEADER},
    )


class PassthroughHandler:
    def __init__(
        self,
        primary: Upstream,
        limits: Limits,
        mirrored: Iterable[str],
        redact: Callable[[str], str],
    ) -> None:
        self._primary = primary
        self._redact = redact
        self._limits = limits
        self._mirrored = tuple(mirrored)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        status = 499  # stays so when the client leaves before an answer
        try:
            response = await self._forward(request)
            status = response.status
            return response
        finally:
            log.info(
                "passthrough",
                method=request.method,
                # Not the query: it can carry a key of any shape (``?key=...``).
                path=request.raw_path.partition("?")[0],
                status=status,
                latency_ms=round((time.perf_counter() - started) * 1000, 2),
            )

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        if request.method not in ALLOWED_METHODS:
            return method_not_allowed()
        try:
            target = parse_target(request.raw_path, self._mirrored)
            headers = self._headers(request)
            body = await read_body(request, self._limits) if request.can_read_body else None
        except RequestError as exc:
            return exc.response()
        call = ForwardRequest(request.method, target.tail, target.query, body, headers)
        try:
            upstream = await self._primary.forward(call)
        except UpstreamError as exc:
            return _failed(exc)
        try:
            return await self._relay(request, upstream)
        finally:
            await upstream.aclose()

    def _headers(self, request: web.Request) -> dict[str, str]:
        headers = {k: request.headers[k] for k in _FORWARDED if k in request.headers}
        if self._primary.config.api_key is None and "Authorization" in request.headers:
            headers["Authorization"] = request.headers["Authorization"]
        for name, value in headers.items():
            if not (value.isascii() and value.isprintable()):
                raise RequestError(
                    400,
                    f"The {name} header must be printable ASCII.",
                    param=name,
                    code="invalid_header",
                )
        if self._primary.config.api_key is not None:
            headers["Authorization"] = f"Bearer {self._primary.config.api_key}"
        return headers

    async def _relay(self, request: web.Request, upstream: UpstreamResponse) -> web.StreamResponse:
        headers = {
            k: v
            for k, v in upstream.headers.items()
            if not k.lower().startswith("x-understudy-")  # ours say what we did, not upstream
        }
        headers = redacted_upstream_headers(upstream.status, headers, self._redact)
        response = web.StreamResponse(status=upstream.status, headers=headers)
        response.headers[SERVED_BY_HEADER] = self._primary.name
        if upstream.status >= 400:
            return await self._relay_error(upstream, response)
        try:
            await response.prepare(request)
            async for chunk in upstream:
                await response.write(chunk)
            await response.write_eof()
        except UpstreamError as exc:
            # The client already has the status line: cut its connection as the upstream's
            # answer was cut, so it cannot take a partial body for a whole one.
            log.warning("passthrough_cut", error=exc.kind.value)
            _close_client(request)
        except ConnectionResetError:  # the client left mid-answer; the upstream call ends
            _close_client(request)
        return response

    async def _relay_error(
        self, upstream: UpstreamResponse, head: web.StreamResponse
    ) -> web.Response:
        """An error answer is read whole, so a key it quotes is masked before it is sent."""
        try:
            body = b"".join([c async for c in upstream])
        except UpstreamError as exc:
            return _failed(exc)
        return web.Response(
            status=upstream.status,
            body=redacted_upstream_error(body, self._redact),
            headers=head.headers,
        )


def _failed(failure: UpstreamError) -> web.Response:
    log.warning("passthrough_failed", error=failure.kind.value)
    return error_response(
        504 if failure.kind.value == "timeout" else 502,
        f"The upstream did not answer ({failure.kind.value}).",
        error_type="upstream_error",
        code=f"upstream_{failure.kind.value}",
    )


def _close_client(request: web.Request) -> None:
    if request.transport is not None:
        request.transport.close()
