"""Operational endpoints: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

ReadinessCheck = Callable[[], str | None]  # returns why it is not ready, or None
# Each candidate's health and load, shown with readiness but never deciding it: while a
# candidate is down the primary still serves every request.
CandidateDetail = Callable[[], Mapping[str, Any]]


class OpsHandlers:
    def __init__(
        self,
        registry: CollectorRegistry,
        checks: Sequence[ReadinessCheck],
        candidates: CandidateDetail | None = None,
    ) -> None:
        self._registry = registry
        self._checks = list(checks)
        self._candidates = candidates
        self.shutting_down = False
        # What /metrics shows: this registry's, unless the wiring adds other processes'.
        self.exposition: Callable[[], Awaitable[bytes]] = self.own_metrics

    async def healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(self, _request: web.Request) -> web.Response:
        reasons = [reason for check in self._checks if (reason := check()) is not None]
        if self.shutting_down:
            reasons.append("shutting down")
        body: dict[str, Any] = (
            {"status": "not ready", "reasons": reasons} if reasons else {"status": "ready"}
        )
        if self._candidates is not None:
            body["candidates"] = self._candidates()
        return web.json_response(body, status=503 if reasons else 200)

    async def own_metrics(self) -> bytes:
        """This process's metrics alone."""
        return generate_latest(self._registry)

    async def metrics(self, _request: web.Request) -> web.Response:
        body = await self.exposition()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
