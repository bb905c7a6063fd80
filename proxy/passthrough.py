"""Every other /v1/* path goes to the primary only, streamed both ways."""

from __future__ import annotations

import time

import aiohttp
import structlog
from aiohttp import web

from proxy.errors import error_response
from proxy.exchange import PRIMARY_HEADERS
from proxy.relay import SERVED_BY_HEADER
from proxy.upstreams import HttpUpstream
from proxy.upstreams.base import map_client_error, relayable_headers

log = structlog.get_logger("understudy.passthrough")

_FORWARDED = (*PRIMARY_HEADERS, "Content-Type", "Accept")


class PassthroughHandler:
    def __init__(self, primary: HttpUpstream, max_body_bytes: int) -> None:
        self._primary = primary
        self._max_body_bytes = max_body_bytes

    async def handle(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        response = await self._forward(request)
        log.info(
            "passthrough",
            method=request.method,
            path=request.path,
            status=response.status,
            latency_ms=round((time.perf_counter() - started) * 1000, 2),
        )
        return response

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        tail = request.match_info["tail"]
        headers = {k: request.headers[k] for k in _FORWARDED if k in request.headers}
        if self._primary.config.api_key is not None:
            headers["Authorization"] = f"Bearer {self._primary.config.api_key}"
        elif "Authorization" in request.headers:
            headers["Authorization"] = request.headers["Authorization"]
        try:
            body = await request.read() if request.can_read_body else None
        except web.HTTPRequestEntityTooLarge:
            return error_response(
                413,
                f"Request body is larger than {self._max_body_bytes} bytes.",
                code="request_too_large",
            )
        url = self._primary.url(f"/{tail}")
        try:
            async with self._primary.session.request(
                request.method, url, params=request.query, data=body, headers=headers
            ) as upstream:
                response = web.StreamResponse(
                    status=upstream.status, headers=relayable_headers(upstream.headers)
                )
                response.headers[SERVED_BY_HEADER] = self._primary.name
                await response.prepare(request)
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
                return response
        except (TimeoutError, aiohttp.ClientError) as exc:
            failure = map_client_error(exc, self._primary.name)
            log.warning("passthrough_failed", path=f"/v1/{tail}", error=failure.kind.value)
            return error_response(
                504 if failure.kind.value == "timeout" else 502,
                f"The upstream did not answer ({failure.kind.value}).",
                error_type="upstream_error",
                code=f"upstream_{failure.kind.value}",
            )
