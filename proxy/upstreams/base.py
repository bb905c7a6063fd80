"""Shared HTTP plumbing for upstream adapters: one ClientSession each, errors mapped to kinds."""

from __future__ import annotations

import abc
import asyncio
import math
from collections.abc import AsyncIterator, Callable, Mapping
from typing import ClassVar

import aiohttp
from yarl import URL

from core import ErrorKind, UpstreamError, UpstreamRequest, UpstreamResponse
from proxy.config import UpstreamConfig
from proxy.upstreams.load_metrics import ANY_NAMES, LoadNames, LoadReading, parse_load
from proxy.upstreams.pool import RecentFirstConnector
from proxy.upstreams.port import ForwardRequest, ProbeResult

# Headers that describe one hop's connection or encoding, never relayed.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "content-encoding",
        "host",
    }
)


def relayable_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() not in HOP_BY_HOP}


def map_client_error(exc: BaseException, upstream: str) -> UpstreamError:
    """Turn an aiohttp/asyncio failure into the most specific UpstreamError."""
    if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return UpstreamError(ErrorKind.TIMEOUT, f"{upstream}: timed out")
    if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ServerDisconnectedError):
        return UpstreamError(ErrorKind.CONNECT, f"{upstream}: connection failed")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return UpstreamError(ErrorKind.INCOMPLETE_STREAM, f"{upstream}: response cut short")
    if isinstance(exc, aiohttp.ClientResponseError | aiohttp.ClientConnectionError):
        return UpstreamError(ErrorKind.CONNECT, f"{upstream}: connection error")
    return UpstreamError(ErrorKind.INVALID_RESPONSE, f"{upstream}: {type(exc).__name__}")


async def body_chunks(
    response: aiohttp.ClientResponse,
    upstream: str,
    idle_timeout_s: float,
    ended: Callable[[], None] | None = None,
) -> AsyncIterator[bytes]:
    """The response body as it arrives; a silence longer than ``idle_timeout_s`` ends it.

    The session's total timeout bounds the whole call; this bounds each wait, so a
    stream that stalls halfway is cut long before the total runs out. The error is
    ``INCOMPLETE_STREAM`` once a byte arrived, ``TIMEOUT`` before. The caller closes
    the response, which closes its connection. ``ended`` is called once the whole
    body has been read.
    """
    content = response.content
    chunks = content.iter_any().__aiter__()
    received = False
    while True:
        # Once the whole body is here no read can wait, so no deadline is armed for it
        # (a short answer usually arrives with its headers).
        idle = None if content.is_eof() else asyncio.timeout(idle_timeout_s)
        try:
            if idle is None:
                chunk = await anext(chunks)
            else:
                async with idle:
                    chunk = await anext(chunks)
        except StopAsyncIteration:
            if ended is not None:
                ended()
            return
        except (TimeoutError, aiohttp.ClientError) as exc:
            if idle is None or not idle.expired():
                raise map_client_error(exc, upstream) from exc
            kind = ErrorKind.INCOMPLETE_STREAM if received else ErrorKind.TIMEOUT
            raise UpstreamError(kind, f"{upstream}: no data for {idle_timeout_s:g} s") from exc
        received = True
        yield chunk


# A probe or a metrics page larger than this is not what the server should send.
MAX_PROBE_BYTES = 4 * 1024 * 1024
PROBE_CONNECTIONS = 2  # a probe and a scrape at once


def server_root(base_url: str) -> str:
    """The server's root: health and metrics live there, beside the ``/v1`` API root."""
    return base_url[: -len("/v1")] if base_url.endswith("/v1") else base_url


class HttpUpstream(abc.ABC):
    """Base for adapters that reach their backend over HTTP through one ClientSession."""

    # The Prometheus names of this kind's load figures.
    load_names: ClassVar[LoadNames] = ANY_NAMES

    def __init__(self, config: UpstreamConfig) -> None:
        self.config = config
        self._session: aiohttp.ClientSession | None = None
        # Probes and scrapes have connections of their own: a pool full of calls must
        # not make a healthy server look dead, nor a probe take a call's connection.
        self._probe_session: aiohttp.ClientSession | None = None

    @property
    def name(self) -> str:
        return self.config.name

    async def start(self) -> None:
        # Bounded for every upstream, the primary included: a flood of clients waits
        # for a connection instead of opening sockets without end.
        connector = RecentFirstConnector(
            limit=self.config.max_concurrency,
            ttl_dns_cache=300,
            keepalive_timeout=self.config.idle_connection_timeout_s,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            # Exact deadlines: aiohttp rounds timeouts of 5 s or more up to a whole
            # second, so every call to a hung upstream started within one second would
            # expire in the same loop iteration and stall the clients' requests together.
            timeout=aiohttp.ClientTimeout(
                total=self.config.timeout_s,
                sock_connect=self.config.connect_timeout_s,
                ceil_threshold=math.inf,
            ),
            auto_decompress=True,
        )
        self._probe_session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=PROBE_CONNECTIONS, keepalive_timeout=self.config.idle_connection_timeout_s
            )
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._probe_session is not None:
            await self._probe_session.close()
            self._probe_session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError(f"upstream {self.name} used before start()")
        return self._session

    def url(self, path: str) -> str:
        return f"{self.config.base_url}{path}"

    def forward_url(self, path: str, query: str) -> URL:
        """The API root's path plus ``path`` and ``query``, encoded as they came."""
        base = URL(self.config.base_url)
        return URL.build(
            scheme=base.scheme,
            authority=base.raw_authority,
            path=f"{base.raw_path.rstrip('/')}/{path}",
            query_string=query,
            encoded=True,
        )

    @abc.abstractmethod
    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        """Start the call and return once the response headers arrived."""

    @abc.abstractmethod
    async def probe(self, timeout_s: float) -> ProbeResult:
        """Whether the server is up and serves every mapped model; never raises."""

    async def get(self, url: str, timeout_s: float) -> tuple[int, bytes]:
        """A small GET (a probe, a metrics page): its status and body, within ``timeout_s``."""
        headers = {}
        # The key goes to the candidate's own server only, not to a metrics page elsewhere.
        same_server = URL(url).origin() == URL(self.config.base_url).origin()
        if self.config.api_key is not None and same_server:
            headers["Authorization"] = f"Bearer {self.config.api_key}"
        if self._probe_session is None:
            raise RuntimeError(f"upstream {self.name} probed before start()")
        try:
            async with asyncio.timeout(timeout_s):
                get = self._probe_session.get(url, headers=headers, allow_redirects=False)
                async with get as resp:
                    body = await resp.content.read(MAX_PROBE_BYTES + 1)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise map_client_error(exc, self.name) from exc
        if len(body) > MAX_PROBE_BYTES:
            raise UpstreamError(ErrorKind.INVALID_RESPONSE, f"{self.name}: answer too large")
        return resp.status, body

    async def read_load(self, url: str, timeout_s: float) -> LoadReading:
        status, body = await self.get(url, timeout_s)
        if status != 200:
            raise UpstreamError(
                ErrorKind.HTTP_STATUS, f"{self.name}: metrics status {status}", status
            )
        try:
            return parse_load(body.decode("utf-8", "replace"), self.load_names)
        except ValueError as exc:
            raise UpstreamError(
                ErrorKind.INVALID_RESPONSE, f"{self.name}: metrics not Prometheus text"
            ) from exc

    async def forward(self, request: ForwardRequest) -> UpstreamResponse:
        url = self.forward_url(request.path, request.query)
        return await self.call(request.method, url, request.body, request.headers)

    async def call(
        self, method: str, url: str | URL, body: bytes | str | None, headers: Mapping[str, str]
    ) -> UpstreamResponse:
        """One HTTP call as an UpstreamResponse, once its headers arrived; an error status is
        a response like any other. Redirects are not followed: one must not take the
        operator's key elsewhere."""
        try:
            response = await self.session.request(
                method, url, data=body, headers=headers, allow_redirects=False
            )
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise map_client_error(exc, self.name) from exc
        return AiohttpBody(
            response,
            self.name,
            relayable_headers(response.headers),
            self.config.stream_idle_timeout_s,
        )


class AiohttpBody:
    """An UpstreamResponse over an aiohttp response, yielding bytes as they arrive."""

    def __init__(
        self,
        response: aiohttp.ClientResponse,
        upstream: str,
        headers: Mapping[str, str],
        idle_timeout_s: float,
    ) -> None:
        self._response = response
        self._upstream = upstream
        self._idle_timeout_s = idle_timeout_s
        self.status = response.status
        self.headers = headers
        self._complete = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        # The body's own generator, not one wrapped around it: one layer less per chunk.
        return body_chunks(self._response, self._upstream, self._idle_timeout_s, self._ended)

    def _ended(self) -> None:
        self._complete = True

    async def aclose(self) -> None:
        # A fully read body returns its connection to the pool; anything else
        # closes the socket, which is how an abandoned upstream call is cancelled.
        if self._complete:
            self._response.release()
        else:
            self._response.close()
