"""Operational endpoints: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

ReadinessCheck = Callable[[], str | None]  # returns why it is not ready, or None


class OpsHandlers:
    def __init__(self, registry: CollectorRegistry, checks: Sequence[ReadinessCheck]) -> None:
        self._registry = registry
        self._checks = list(checks)
        self.shutting_down = False

    async def healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(self, _request: web.Request) -> web.Response:
        reasons = [reason for check in self._checks if (reason := check()) is not None]
        if self.shutting_down:
            reasons.append("shutting down")
        if reasons:
            return web.json_response({"status": "not ready", "reasons": reasons}, status=503)
        return web.json_response({"status": "ready"})

    async def metrics(self, _request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(self._registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )
