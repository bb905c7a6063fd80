"""A keep-alive HTTP/1.1 client on one raw connection, for hundreds of clients in one process.

aiohttp's client costs the test process about as much CPU per request as the
proxy spends answering it; on two shared cores, 500 of them would measure the
load generator. This one writes prepared bytes and reads a Content-Length body,
so the latency it measures is the proxy's.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit


@dataclass(frozen=True, slots=True)
class RawResponse:
    status: int
    headers: dict[str, str]  # names lower-cased
    body: bytes


class RawClient:
    """One connection; requests on it go one at a time, as from one client."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> Self:
        self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._writer is not None:
            self._writer.close()
            await self._writer.wait_closed()

    @staticmethod
    def post_bytes(path: str, body: dict[str, Any], headers: dict[str, str]) -> bytes:
        """The complete request, prepared once so that sending it costs one write."""
        payload = json.dumps(body).encode()
        head = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
        head += [f"{name}: {value}" for name, value in headers.items()]
        head.append(f"Content-Length: {len(payload)}")
        return ("\r\n".join(head) + "\r\n\r\n").encode() + payload

    async def send(self, request: bytes) -> RawResponse:
        """Send a prepared request and read its answer, which must carry a Content-Length."""
        assert self._reader is not None and self._writer is not None, "not connected"
        self._writer.write(request)
        head = await self._reader.readuntil(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = await self._reader.readexactly(int(headers["content-length"]))
        return RawResponse(int(status_line.split()[1]), headers, body)
