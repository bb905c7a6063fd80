"""What the proxy asks of an upstream: ``core.Upstream`` plus its settings, a lifecycle,
a raw pass-through call, a health probe and a reading of the server's own load. The proxy,
replay and health checks are typed against this, so an adapter over HTTP and one answered
by a function in-process are interchangeable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from core import UpstreamRequest, UpstreamResponse
from proxy.config import UpstreamConfig
from proxy.upstreams.load_metrics import LoadReading


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


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One health probe's answer. ``problem`` says why in a few words, never quoting a body."""

    healthy: bool
    problem: str | None = None
    missing_models: tuple[str, ...] = ()  # mapped models the server does not serve

    @classmethod
    def failed(cls, problem: str) -> ProbeResult:
        return cls(False, problem)


HEALTHY = ProbeResult(True)


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

    async def probe(self, timeout_s: float) -> ProbeResult:
        """Whether the server is up and serves every mapped model; never raises."""
        ...

    async def read_load(self, url: str, timeout_s: float) -> LoadReading:
        """The server's own queue and cache figures from its Prometheus endpoint at ``url``.

        Raises ``core.UpstreamError`` when no usable answer arrives.
        """
        ...
