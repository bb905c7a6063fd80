"""The Protocols through which the proxy talks to upstreams, storage and rollout."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from core.exchange import Exchange, Route
from core.routing import FlagState


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    """An OpenAI-shaped request, ready for one upstream.

    ``body`` is the JSON object with the model already mapped for this upstream.
    ``raw_body`` is the client's original bytes when ``body`` is unchanged from
    them, so OpenAI-compatible upstreams get exactly what the client sent.
    ``headers`` holds only what may be forwarded to this upstream.
    """

    route: Route
    body: Mapping[str, Any]
    stream: bool
    headers: Mapping[str, str]
    raw_body: bytes | None = None


class UpstreamResponse(Protocol):
    """A response in OpenAI's wire format: a JSON body, or SSE when streaming.

    Iterating yields raw bytes as they arrive; an error status (4xx/5xx) is a
    response like any other. Failures while reading raise ``core.UpstreamError``.
    """

    status: int
    headers: Mapping[str, str]

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


class Upstream(Protocol):
    """One configured backend (the primary or a candidate)."""

    @property
    def name(self) -> str: ...

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        """Start the call; return once response headers arrived.

        Raises ``core.UpstreamError`` for timeouts, connection failures and
        responses that cannot be used.
        """
        ...


class ExchangeSink(Protocol):
    """Where finished exchanges go. ``put`` never blocks and never awaits storage."""

    def put(self, exchange: Exchange) -> None: ...


class FlagSource(Protocol):
    """The current rollout state, read on every request from memory."""

    def current(self, route: Route) -> FlagState: ...
