"""A candidate that speaks only Chat Completions, answering the Responses API.

The request becomes a chat request (after the conversation so far, which such a server
does not keep: it is remembered here, under the response's id), and the chat answer
becomes a Response object or event stream, so the proxy records and relays it like a
native one. A reasoning model's thinking becomes a ``reasoning`` item ahead of the answer
(see ``shapes`` and ``events``); the remembered turn keeps only the answer and its tool
calls, as a chat server expects the conversation back.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from core import ErrorKind, Route, UpstreamError, UpstreamRequest, UpstreamResponse
from core.responses import TranslatedTurn
from proxy.config import UpstreamConfig
from proxy.responses import shapes
from proxy.responses.chat_request import chat_request, input_messages
from proxy.responses.events import EventStream
from proxy.responses.memory import ResponseMemory
from proxy.upstreams.load_metrics import LoadReading
from proxy.upstreams.port import ForwardRequest, ProbeResult, Upstream

_JSON = {"content-type": "application/json"}
_SSE = {"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"}


class TranslatingUpstream:
    """``inner`` as a Responses API server; every other call goes to ``inner`` as is."""

    def __init__(self, inner: Upstream, memory: ResponseMemory) -> None:
        self._inner = inner
        self._memory = memory

    @property
    def name(self) -> str:
        return self._inner.name

    @property
    def config(self) -> UpstreamConfig:
        return self._inner.config

    async def start(self) -> None:
        await self._inner.start()

    async def close(self) -> None:
        await self._inner.close()

    async def probe(self, timeout_s: float) -> ProbeResult:
        return await self._inner.probe(timeout_s)

    async def read_load(self, url: str, timeout_s: float) -> LoadReading:
        return await self._inner.read_load(url, timeout_s)

    async def forward(self, request: ForwardRequest) -> UpstreamResponse:
        return await self._inner.forward(request)

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        if request.route is not Route.RESPONSES:
            return await self._inner.send(request)
        history: list[Mapping[str, Any]] = []
        parent = request.body.get("previous_response_id")
        if isinstance(parent, str):
            turn = await self._memory.turn(parent)
            if turn is None or turn.upstream != self.name:
                return Refusal(
                    404,
                    f"Previous response with id '{parent}' not found.",
                    "previous_response_not_found",
                )
            history = list(turn.messages)
        chat = chat_request(request.body, history, request.stream)
        answer = await self._inner.send(UpstreamRequest(Route.CHAT, chat, request.stream, {}))
        return TranslatedAnswer(answer, self, request, history)

    def remember(self, rid: str, messages: list[Mapping[str, Any]], answer: dict[str, Any]) -> None:
        self._memory.remember_turn(
            TranslatedTurn(rid, self.name, messages, answer, self._memory.expires_at())
        )

    async def settled(self, rid: str) -> None:
        await self._memory.settled(rid)


class Refusal:
    """An error answer made here, in OpenAI's error shape."""

    def __init__(self, status: int, message: str, code: str) -> None:
        self.status = status
        self.headers: Mapping[str, str] = _JSON
        error = {"message": message, "type": "invalid_request_error", "param": None, "code": code}
        self._body = json.dumps({"error": error}).encode()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self._body

    async def aclose(self) -> None:
        return None


class TranslatedAnswer:
    """The chat answer ``inner`` as Responses bytes; error answers pass as they are (both
    APIs share the error shape)."""

    def __init__(
        self,
        inner: UpstreamResponse,
        upstream: TranslatingUpstream,
        request: UpstreamRequest,
        history: list[Mapping[str, Any]],
    ) -> None:
        self._inner = inner
        self._upstream = upstream
        self._request = request
        self._history = history
        self.status = inner.status
        streaming = request.stream and inner.status < 400
        self.headers: Mapping[str, str] = _SSE if streaming else _JSON
        self._rid = shapes.new_id("resp")
        self._created = int(time.time())

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self.status >= 400:
            async for chunk in self._inner:
                yield chunk
        elif self._request.stream:
            async for chunk in self._events():
                yield chunk
        else:
            yield await self._whole()

    async def _whole(self) -> bytes:
        raw = b"".join([chunk async for chunk in self._inner])
        chat = _json_object(raw, self._upstream.name)
        choices = chat.get("choices")
        choice = choices[0] if isinstance(choices, list) and choices else {}
        message = choice.get("message") if isinstance(choice, Mapping) else None
        output = shapes.output_of_chat(message if isinstance(message, Mapping) else {})
        finish = choice.get("finish_reason") if isinstance(choice, Mapping) else None
        status, incomplete = shapes.status_of(finish if isinstance(finish, str) else None)
        answer = shapes.response(
            self._rid,
            self._created,
            self._request.body,
            status=status,
            output=output,
            usage=shapes.usage(chat.get("usage")),
            incomplete=incomplete,
        )
        await self._remember(output, answer)
        return json.dumps(answer, ensure_ascii=False).encode()

    async def _events(self) -> AsyncIterator[bytes]:
        stream = EventStream(self._rid, self._created, self._request.body)
        opened = done = False
        async for data in _data_events(self._inner):
            # The opening events go out with the server's first chunk, not before: until
            # then the proxy may still fall back to the primary.
            out = b"" if opened else stream.opening()
            opened = True
            if data.strip() == b"[DONE]":
                done = True  # read on to the end, so the connection goes back to the pool
            else:
                out += stream.feed(_json_object(data, self._upstream.name))
            if out:
                yield out
        if not done:
            raise UpstreamError(
                ErrorKind.INCOMPLETE_STREAM, f"{self._upstream.name}: stream ended early"
            )
        # The turn is remembered before the last event: a follow-up may come right after it.
        await self._remember(stream.output, stream.result())
        yield stream.closing()

    async def _remember(self, output: list[dict[str, Any]], answer: dict[str, Any]) -> None:
        if self._request.body.get("store") is False:  # as on OpenAI: nothing to continue from
            return
        messages = [
            *self._history,
            *input_messages(self._request.body),
            shapes.assistant_message(output),
        ]
        self._upstream.remember(self._rid, messages, answer)
        await self._upstream.settled(self._rid)


async def _data_events(body: AsyncIterator[bytes] | UpstreamResponse) -> AsyncIterator[bytes]:
    """The ``data:`` payload of each complete SSE event, as the chunks arrive."""
    buffer = b""
    async for chunk in body:
        buffer += chunk.replace(b"\r\n", b"\n")
        while b"\n\n" in buffer:
            raw, buffer = buffer.split(b"\n\n", 1)
            lines = [
                line[5:].lstrip(b" ") for line in raw.split(b"\n") if line.startswith(b"data:")
            ]
            if lines:
                yield b"\n".join(lines)


def _json_object(raw: bytes, upstream: str) -> Mapping[str, Any]:
    try:
        parsed = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise UpstreamError(ErrorKind.INVALID_RESPONSE, f"{upstream}: not JSON") from exc
    if not isinstance(parsed, Mapping):
        raise UpstreamError(ErrorKind.INVALID_RESPONSE, f"{upstream}: not a JSON object")
    return parsed
