"""An upstream answered in-process by a function, as httpx's MockTransport answers requests.

For tests and tools: the proxy, replay and health checks run against it exactly as
against an HTTP adapter, with no socket in between.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping

from core import ErrorKind, UpstreamError, UpstreamRequest, UpstreamResponse
from proxy.config import UpstreamConfig
from proxy.upstreams.load_metrics import LoadReading
from proxy.upstreams.port import HEALTHY, ForwardRequest, ProbeResult

SendHandler = Callable[[UpstreamRequest], Awaitable[UpstreamResponse]]
ForwardHandler = Callable[[ForwardRequest], Awaitable[UpstreamResponse]]
ProbeHandler = Callable[[], Awaitable[ProbeResult]]
LoadHandler = Callable[[], Awaitable[LoadReading]]


class ChunkedResponse:
    """An UpstreamResponse over chunks given up front (or an async iterator of them)."""

    def __init__(
        self,
        status: int,
        chunks: Iterable[bytes] | AsyncIterator[bytes],
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.status = status
        self.headers: Mapping[str, str] = dict(headers or {"Content-Type": "application/json"})
        self._chunks = chunks
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if isinstance(self._chunks, AsyncIterator):
            async for chunk in self._chunks:
                yield chunk
        else:
            for chunk in self._chunks:
                yield chunk

    async def aclose(self) -> None:
        self.closed = True


async def _no_forward(request: ForwardRequest) -> UpstreamResponse:
    raise UpstreamError(ErrorKind.CONNECT, f"no pass-through handler for {request.path}")


async def _always_healthy() -> ProbeResult:
    return HEALTHY


async def _no_metrics() -> LoadReading:
    raise UpstreamError(ErrorKind.CONNECT, "no metrics handler")


class FunctionUpstream:
    """``send`` calls ``handler``; ``forward`` calls ``forward_handler`` (or fails to connect);
    ``probe`` and ``read_load`` call theirs (healthy, and no metrics, when not given).

    A handler answers with an UpstreamResponse (``ChunkedResponse`` is the simple one) or
    raises ``core.UpstreamError``, as an HTTP adapter would.
    """

    def __init__(
        self,
        config: UpstreamConfig,
        handler: SendHandler,
        forward_handler: ForwardHandler = _no_forward,
        *,
        probe_handler: ProbeHandler = _always_healthy,
        load_handler: LoadHandler = _no_metrics,
    ) -> None:
        self._config = config
        self._handler = handler
        self._forward_handler = forward_handler
        self._probe_handler = probe_handler
        self._load_handler = load_handler
        self.started = False

    @property
    def name(self) -> str:
        return self._config.name

    @property
    def config(self) -> UpstreamConfig:
        return self._config

    async def start(self) -> None:
        self.started = True

    async def close(self) -> None:
        self.started = False

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        return await self._handler(request)

    async def forward(self, request: ForwardRequest) -> UpstreamResponse:
        return await self._forward_handler(request)

    async def probe(self, timeout_s: float) -> ProbeResult:
        return await self._probe_handler()

    async def read_load(self, url: str, timeout_s: float) -> LoadReading:
        return await self._load_handler()
