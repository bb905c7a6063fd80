"""The proxy as an aiohttp application: routes, lifecycle and error shape."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from functools import partial

import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry

from core import ExchangeSink, FlagSource, Route
from proxy.config import Limits
from proxy.errors import error_response
from proxy.exchange import EXCHANGE_ID, ExchangeHandler
from proxy.metrics import ProxyMetrics
from proxy.ops import OpsHandlers, ReadinessCheck
from proxy.passthrough import PassthroughHandler
from proxy.relay import EXCHANGE_ID_HEADER, SERVED_BY_HEADER
from proxy.tasks import BackgroundTasks
from proxy.upstream_set import UpstreamSet

log = structlog.get_logger("understudy.proxy")

UPSTREAMS = web.AppKey("upstreams", UpstreamSet)
BACKGROUND = web.AppKey("background_tasks", BackgroundTasks)
METRICS = web.AppKey("proxy_metrics", ProxyMetrics)
OPS = web.AppKey("ops", OpsHandlers)

MIRRORED_ROUTES = {
    "/v1/chat/completions": Route.CHAT,
    "/v1/completions": Route.COMPLETIONS,
    "/v1/embeddings": Route.EMBEDDINGS,
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def openai_error_shape(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error the client sees, ours or aiohttp's, is in OpenAI's JSON shape."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if exc.status == 404:
            return error_response(404, f"Unknown path {request.path}.", code="unknown_url")
        if exc.status == 405:
            return error_response(
                405,
                f"Method {request.method} is not allowed on {request.path}.",
                code="method_not_allowed",
            )
        if exc.status == 413:
            return error_response(413, "Request body is too large.", code="request_too_large")
        return error_response(exc.status, exc.reason, code=None)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("internal_error", path=request.path)
        return error_response(
            500,
            "Understudy failed to handle this request.",
            error_type="server_error",
            code="proxy_internal_error",
        )


def create_proxy_app(
    *,
    upstreams: UpstreamSet,
    flags: FlagSource,
    sink: ExchangeSink,
    registry: CollectorRegistry,
    limits: Limits,
    readiness: Sequence[ReadinessCheck] = (),
    sink_depth: Callable[[], int] | None = None,
    shutdown_grace_s: float = 10.0,
) -> web.Application:
    app = web.Application(client_max_size=limits.max_body_bytes, middlewares=[openai_error_shape])
    metrics = ProxyMetrics(registry)
    if sink_depth is not None:
        metrics.watch_sink_depth(sink_depth)
    tasks = BackgroundTasks()
    ops = OpsHandlers(registry, readiness)
    app[UPSTREAMS] = upstreams
    app[BACKGROUND] = tasks
    app[METRICS] = metrics
    app[OPS] = ops

    exchanges = ExchangeHandler(
        upstreams=upstreams, flags=flags, sink=sink, metrics=metrics, tasks=tasks, limits=limits
    )
    passthrough = PassthroughHandler(upstreams.primary, limits.max_body_bytes)
    for path, route in MIRRORED_ROUTES.items():
        app.router.add_post(path, partial(_mirrored, exchanges, route))
    app.router.add_route("*", "/v1/{tail:.*}", passthrough.handle)
    app.router.add_get("/healthz", ops.healthz)
    app.router.add_get("/readyz", ops.readyz)
    app.router.add_get("/metrics", ops.metrics)

    async def lifecycle(_app: web.Application) -> AsyncIterator[None]:
        await upstreams.start()
        yield
        # Background calls still running get a grace period, then are cancelled
        # and recorded as such; only then are the upstream pools closed.
        await tasks.drain(shutdown_grace_s)
        await upstreams.close()

    async def mark_shutting_down(_app: web.Application) -> None:
        ops.shutting_down = True

    app.cleanup_ctx.append(lifecycle)
    app.on_shutdown.append(mark_shutting_down)
    app.on_response_prepare.append(_identify_response)
    return app


async def _identify_response(request: web.Request, response: web.StreamResponse) -> None:
    """Every response says which exchange it was and who answered, errors included."""
    if EXCHANGE_ID_HEADER not in response.headers:
        exchange_id = request.get(EXCHANGE_ID) or uuid.uuid4()
        response.headers[EXCHANGE_ID_HEADER] = str(exchange_id)
    if SERVED_BY_HEADER not in response.headers:
        response.headers[SERVED_BY_HEADER] = "understudy"  # refused before any upstream


async def _mirrored(
    handler: ExchangeHandler, route: Route, request: web.Request
) -> web.StreamResponse:
    return await handler.handle(request, route)
