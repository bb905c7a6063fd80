"""Shared HTTP plumbing for upstream adapters: one ClientSession each, errors mapped to kinds."""

from __future__ import annotations

import abc
import asyncio
from collections.abc import AsyncIterator, Mapping

import aiohttp

from core import ErrorKind, UpstreamError, UpstreamRequest, UpstreamResponse
from proxy.config import UpstreamConfig

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


class HttpUpstream(abc.ABC):
    """Base for adapters that reach their backend over HTTP through one ClientSession."""

    def __init__(self, config: UpstreamConfig, *, unlimited_pool: bool = False) -> None:
        self.config = config
        self._unlimited_pool = unlimited_pool
        self._session: aiohttp.ClientSession | None = None

    @property
    def name(self) -> str:
        return self.config.name

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=0 if self._unlimited_pool else self.config.max_concurrency,
            ttl_dns_cache=300,
            keepalive_timeout=30,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(
                total=self.config.timeout_s, sock_connect=self.config.connect_timeout_s
            ),
            auto_decompress=True,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError(f"upstream {self.name} used before start()")
        return self._session

    def url(self, path: str) -> str:
        return f"{self.config.base_url}{path}"

    @abc.abstractmethod
    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        """Start the call and return once the response headers arrived."""


class AiohttpBody:
    """An UpstreamResponse over an aiohttp response, yielding bytes as they arrive."""

    def __init__(
        self, response: aiohttp.ClientResponse, upstream: str, headers: Mapping[str, str]
    ) -> None:
        self._response = response
        self._upstream = upstream
        self.status = response.status
        self.headers = headers
        self._complete = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise map_client_error(exc, self._upstream) from exc
        self._complete = True

    async def aclose(self) -> None:
        # A fully read body returns its connection to the pool; anything else
        # closes the socket, which is how an abandoned upstream call is cancelled.
        if self._complete:
            self._response.release()
        else:
            self._response.close()
