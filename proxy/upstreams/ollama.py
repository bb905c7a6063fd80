"""Ollama's native API (/api/chat, /api/generate, /api/embed), spoken as OpenAI.

NDJSON streams become SSE, and answers become OpenAI-shaped JSON, so the rest
of the proxy only ever sees OpenAI's wire format.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp

from core import ErrorKind, Route, UpstreamError, UpstreamRequest, UpstreamResponse
from proxy.upstreams import ollama_translate as tr
from proxy.upstreams.base import HttpUpstream, body_chunks, map_client_error
from proxy.upstreams.load_metrics import LoadNames
from proxy.upstreams.port import ProbeResult
from proxy.upstreams.probing import ollama_model_names, ollama_tagged, serves_models

_JSON_HEADERS = {"content-type": "application/json"}
_SSE_HEADERS = {"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"}


def _sse(payload: Mapping[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


class _Translated:
    """An UpstreamResponse whose bytes are translated from an Ollama answer."""

    def __init__(
        self,
        response: aiohttp.ClientResponse,
        upstream: str,
        route: Route,
        model: str,
        stream: bool,
        include_usage: bool,
        idle_timeout_s: float,
    ) -> None:
        self._response = response
        self._idle_timeout_s = idle_timeout_s
        self._upstream = upstream
        self._route = route
        self._model = model
        self._stream = stream and route is not Route.EMBEDDINGS
        self._include_usage = include_usage
        self._complete = False
        self.status = response.status
        self.headers: Mapping[str, str] = (
            _SSE_HEADERS if self._stream and self.status < 400 else _JSON_HEADERS
        )

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self.status >= 400:
            text = (await self._whole()).decode("utf-8", errors="replace")
            yield json.dumps(tr.error_body(self.status, text)).encode()
        elif self._stream:
            async for piece in self._stream_chunks():
                yield piece
        else:
            native = self._parse(await self._whole())
            rid = tr.new_id(self._route)
            yield json.dumps(
                tr.completion_from_native(self._route, native, self._model, rid)
            ).encode()
        self._complete = True

    def _chunks(self) -> AsyncIterator[bytes]:
        return body_chunks(self._response, self._upstream, self._idle_timeout_s)

    async def _whole(self) -> bytes:
        return b"".join([chunk async for chunk in self._chunks()])

    async def _lines(self) -> AsyncIterator[bytes]:
        """NDJSON lines, each waited for under the idle timeout like any body read."""
        pending: list[bytes] = []
        async for chunk in self._chunks():
            if b"\n" not in chunk:
                pending.append(chunk)
                continue
            first, *middle, rest = chunk.split(b"\n")
            yield b"".join([*pending, first])
            for line in middle:
                yield line
            pending = [rest] if rest else []
        if pending:
            yield b"".join(pending)

    async def _stream_chunks(self) -> AsyncIterator[bytes]:
        rid = tr.new_id(self._route)
        first, tools_sent, done = True, 0, False
        async for line in self._lines():  # NDJSON: one JSON object per line
            if not line.strip():
                continue
            native = self._parse(line)
            if "error" in native:
                # Ollama reports a failure mid-stream as an {"error": ...} line under the 200
                # already sent; OpenAI as an error event, which SDKs raise. The stream then
                # ends without [DONE], so the recorder counts it incomplete.
                yield _sse(tr.error_body(500, json.dumps(dict(native))))
                return
            calls = tr.tool_call_count(native)
            chunks = tr.chunks_from_native(
                self._route,
                native,
                self._model,
                rid,
                first=first,
                include_usage=self._include_usage,
                saw_tools=tools_sent + calls > 0,
                tools_before=tools_sent,
            )
            tools_sent += calls
            first = False
            if chunks:
                yield b"".join(_sse(c) for c in chunks)
            if native.get("done"):
                done = True
                break
        if not done:
            raise UpstreamError(
                ErrorKind.INCOMPLETE_STREAM, f"{self._upstream}: stream ended early"
            )
        yield b"data: [DONE]\n\n"

    def _parse(self, raw: bytes) -> Mapping[str, Any]:
        try:
            parsed = json.loads(raw)
        except ValueError as exc:
            raise UpstreamError(ErrorKind.INVALID_RESPONSE, f"{self._upstream}: not JSON") from exc
        if not isinstance(parsed, Mapping):
            raise UpstreamError(ErrorKind.INVALID_RESPONSE, f"{self._upstream}: not a JSON object")
        return parsed

    async def aclose(self) -> None:
        if self._complete:
            self._response.release()
        else:
            self._response.close()


class OllamaUpstream(HttpUpstream):
    """Only /api/chat, /api/generate and /api/embed are ever called; never management paths."""

    load_names = LoadNames()  # Ollama exports no Prometheus metrics

    async def probe(self, timeout_s: float) -> ProbeResult:
        """``GET /api/tags`` answers, and every mapped model is pulled."""
        return await serves_models(
            self, self.url("/api/tags"), timeout_s, ollama_model_names, ollama_tagged
        )

    def url(self, path: str) -> str:
        return f"{tr.native_root(self.config.base_url)}{path}"

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        headers = {"Content-Type": "application/json"}
        if self.config.api_key is not None:
            headers["Authorization"] = f"Bearer {self.config.api_key}"
        native = tr.to_native(
            request.route,
            request.body,
            request.stream,
            keep_alive=self.config.keep_alive,
            think=self.config.think,
        )
        try:
            response = await self.session.post(
                self.url(tr.NATIVE_PATHS[request.route]), data=json.dumps(native), headers=headers
            )
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise map_client_error(exc, self.name) from exc
        options = request.body.get("stream_options")
        include_usage = isinstance(options, Mapping) and bool(options.get("include_usage"))
        return _Translated(
            response,
            self.name,
            request.route,
            str(request.body["model"]),
            request.stream,
            include_usage,
            self.config.stream_idle_timeout_s,
        )
