"""Relaying an upstream's answer to the client as it arrives."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from core import ErrorKind, UpstreamError, UpstreamResponse
from proxy.errors import error_response, redacted_upstream_error, redacted_upstream_headers
from proxy.record import Arm, ExchangeRecord

# Only on responses of recorded exchanges: the id the exchange is stored under.
EXCHANGE_ID_HEADER = "x-understudy-exchange-id"
# On every response: what the request's log lines carry.
REQUEST_ID_HEADER = "x-understudy-request-id"
SERVED_BY_HEADER = "x-understudy-served-by"


class _ClientGone(Exception):
    """The client disconnected while its answer was being relayed."""


async def relay(
    request: web.Request,
    record: ExchangeRecord,
    arm: Arm,
    upstream: UpstreamResponse,
    rest: AsyncIterator[bytes],
    first: bytes | None,
    *,
    redact: Callable[[str], str],
) -> web.StreamResponse:
    """Send the upstream's answer to the client as it arrives, capturing it on the way.

    ``first`` (already captured) was read from ``rest`` before; ``rest`` yields the remainder.
    A non-streaming answer is sent whole, with a Content-Length, once complete. An error
    answer's header values and body go through ``redact`` first.
    """
    capture = arm.capture
    chunks = rest if first is None else _chunks(first, rest)  # no wrapper when nothing is ahead
    headers = {
        **redacted_upstream_headers(upstream.status, upstream.headers, redact),
        EXCHANGE_ID_HEADER: str(record.id),
        SERVED_BY_HEADER: arm.upstream,
    }
    streaming = record.parsed.stream and upstream.status < 400
    # Non-streaming answers are sent whole once complete; only streams need one up front.
    response: web.StreamResponse | None = None
    try:
        if streaming:
            response = web.StreamResponse(status=upstream.status, headers=headers)
            await _send(request, response, prepare_only=True)
        async for chunk in chunks:
            if chunk is not first:
                capture.add(chunk)
            if response is not None:
                await _write(response, chunk)
        capture.finish()
        if response is None:
            body = capture.body()
            if upstream.status >= 400:
                body = redacted_upstream_error(body, redact)
            response = web.Response(status=upstream.status, body=body, headers=headers)
        await _send(request, response)
    except UpstreamError as exc:
        capture.finish(exc.kind)
        if response is None or not response.prepared:
            return upstream_failure(exc, record)
        # Mid-stream failure: cut the client's connection too, as the upstream did.
        if request.transport is not None:
            request.transport.close()
    except _ClientGone:
        capture.finish(ErrorKind.CLIENT_ABORTED)
    except asyncio.CancelledError:  # the client disconnected and aiohttp cancelled us
        capture.finish(ErrorKind.CLIENT_ABORTED)
        raise
    finally:
        await upstream.aclose()
    assert response is not None  # every path that gets here has made one
    return response


async def _chunks(first: bytes | None, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if first is not None:
        yield first
    async for chunk in rest:
        yield chunk


async def _send(
    request: web.Request, response: web.StreamResponse, prepare_only: bool = False
) -> None:
    try:
        if prepare_only:
            await response.prepare(request)
        else:
            if not response.prepared:
                await response.prepare(request)
            await response.write_eof()
    except ConnectionResetError as exc:
        raise _ClientGone from exc


async def _write(response: web.StreamResponse, chunk: bytes) -> None:
    try:
        await response.write(chunk)
    except ConnectionResetError as exc:
        raise _ClientGone from exc


def upstream_failure(exc: UpstreamError, record: ExchangeRecord) -> web.Response:
    status = 504 if exc.kind is ErrorKind.TIMEOUT else 502
    return error_response(
        status,
        f"The upstream did not answer ({exc.kind.value}).",
        error_type="upstream_error",
        code=f"upstream_{exc.kind.value}",
        headers={EXCHANGE_ID_HEADER: str(record.id), SERVED_BY_HEADER: record.served_by},
    )
