"""What the proxy asks of an upstream: ``core.Upstream`` plus its settings, a lifecycle and
a raw pass-through call. The proxy, replay and health checks are typed against this, so
an adapter over HTTP and one answered by a function in-process are interchangeable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from core import UpstreamRequest, UpstreamResponse
from proxy.config import UpstreamConfig


@dataclass(frozen=True, slots=True)
class ForwardRequest:
    """A request the proxy does not interpret, for the upstream's API root.

    ``path`` is relative to the root and ``query`` the raw query string, both still
    percent-encoded exactly as they were checked, so the upstream sees what was checked.
    """

    method: str
    path: str
    query: str
    body: bytes | None
    headers: Mapping[str, str]


class Upstream(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def config(self) -> UpstreamConfig: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        """An OpenAI-shaped call; returns once the response headers arrived.

        Raises ``core.UpstreamError`` when no usable response arrives.
        """
        ...

    async def forward(self, request: ForwardRequest) -> UpstreamResponse:
        """The pass-through: ``request`` as is, redirects not followed.

        Raises ``core.UpstreamError`` when no response arrives.
        """
        ...
