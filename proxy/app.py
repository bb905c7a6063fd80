"""The proxy as an aiohttp application: routes, lifecycle and error shape."""

from __future__ import annotations

import asyncio
import traceback
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from functools import partial

import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry

from core import ExchangeSink, FlagSource, Route, TripReporter
from core.responses import ResponseOwnerStore
from proxy.backpressure import CandidatePressure
from proxy.breaker import CandidateBreakers
from proxy.config import BreakerConfig, Limits, ShadowCandidate
from proxy.errors import error_response
from proxy.exchange import EXCHANGE_ID, ExchangeHandler
from proxy.health import CandidateHealth, check_at_start
from proxy.load import RequestLoad
from proxy.metrics import ProxyMetrics
from proxy.ops import OpsHandlers, ReadinessCheck
from proxy.passthrough import PassthroughHandler
from proxy.relay import REQUEST_ID_HEADER, SERVED_BY_HEADER
from proxy.responses.handler import ResponsesHandler, responses_upstreams
from proxy.responses.lookup import ResponseLookups
from proxy.responses.memory import ResponseMemory, ResponseMetrics
from proxy.tasks import BackgroundTasks
from proxy.upstream_set import UpstreamSet

log = structlog.get_logger("understudy.proxy")

UPSTREAMS = web.AppKey("upstreams", UpstreamSet)
BACKGROUND = web.AppKey("background_tasks", BackgroundTasks)
METRICS = web.AppKey("proxy_metrics", ProxyMetrics)
OPS = web.AppKey("ops", OpsHandlers)
LOAD = web.AppKey("request_load", RequestLoad)
BREAKERS = web.AppKey("breakers", CandidateBreakers)
HEALTH = web.AppKey("candidate_health", CandidateHealth)
PRESSURE = web.AppKey("candidate_pressure", CandidatePressure)
REQUEST_ID = web.RequestKey("request_id", uuid.UUID)

MIRRORED_ROUTES = {
    "/v1/chat/completions": Route.CHAT,
    "/v1/completions": Route.COMPLETIONS,
    "/v1/embeddings": Route.EMBEDDINGS,
    "/v1/responses": Route.RESPONSES,
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def identify_request(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give the request an id and bind it to every log line written while handling it."""
    request_id = uuid.uuid4()
    request[REQUEST_ID] = request_id
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=str(request_id))
    return await handler(request)


@web.middleware
async def openai_error_shape(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error the client sees, ours or aiohttp's, is in OpenAI's JSON shape."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return http_error(exc)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        # The type and where it happened; never the message, which may quote a body.
        log.error(
            "internal_error",
            request_id=str(_request_id(request)),
            method=request.method,
            path=request.path,
            error=type(exc).__qualname__,
            at=_where(exc),
        )
        return error_response(
            500,
            "Understudy failed to handle this request.",
            error_type="server_error",
            code="proxy_internal_error",
        )


# Status -> (code, message) for errors aiohttp raises; the message never quotes the request.
_HTTP_ERRORS = {
    400: ("bad_request", "The request could not be understood."),
    404: ("unknown_url", "Unknown path; this proxy serves the OpenAI API under /v1/."),
    405: ("method_not_allowed", "This method is not allowed on this path."),
    408: ("request_timeout", "The request did not arrive in time."),
    413: ("request_too_large", "Request body is too large."),
    431: ("request_header_fields_too_large", "The request's headers are too large."),
    503: ("service_unavailable", "Understudy cannot serve this request now."),
}
# Headers of aiohttp's error that still mean something on ours.
_KEPT_HEADERS = ("Allow", "Retry-After")


def http_error(exc: web.HTTPException) -> web.Response:
    code, message = _HTTP_ERRORS.get(exc.status, (None, exc.reason))
    return error_response(
        exc.status,
        message,
        error_type="invalid_request_error" if exc.status < 500 else "server_error",
        code=code,
        headers={k: exc.headers[k] for k in _KEPT_HEADERS if k in exc.headers},
    )


@web.middleware
async def limit_load(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse API requests at once when too many are in flight; ops endpoints never."""
    if not request.path.startswith("/v1/"):
        return await handler(request)
    load = request.config_dict[LOAD]
    if not load.try_enter():
        request.config_dict[METRICS].overloaded.inc()
        log.warning("overloaded", in_flight=load.in_flight)
        return error_response(
            503,
            f"Understudy is handling its limit of {load.max_in_flight} requests; retry shortly.",
            error_type="server_error",
            code="overloaded",
            headers={"Retry-After": "1"},
        )
    try:
        return await handler(request)
    finally:
        load.leave()


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "unknown"


def create_proxy_app(
    *,
    upstreams: UpstreamSet,
    flags: FlagSource,
    sink: ExchangeSink,
    registry: CollectorRegistry,
    limits: Limits,
    redact: Callable[[str], str],
    readiness: Sequence[ReadinessCheck] = (),
    sink_depth: Callable[[], int] | None = None,
    shutdown_grace_s: float = 10.0,
    breaker: BreakerConfig | None = None,
    trips: TripReporter | None = None,
    shadow_candidates: tuple[ShadowCandidate, ...] = (),
    response_store: ResponseOwnerStore | None = None,
) -> web.Application:
    """The proxy. ``redact`` masks secrets in upstream error bodies before clients see them.

    ``trips`` is told whenever a candidate's circuit breaker opens. ``response_store``
    shares which arm holds each Responses API response across replicas (None: this
    replica's memory only).
    """
    app = web.Application(
        client_max_size=limits.max_body_bytes,
        middlewares=[identify_request, openai_error_shape, limit_load],
    )
    metrics = ProxyMetrics(registry)
    load = RequestLoad(limits.max_concurrent_requests, limits.shed_shadows_at)
    metrics.watch_in_flight(lambda: load.in_flight)
    if sink_depth is not None:
        metrics.watch_sink_depth(sink_depth)
    tasks = BackgroundTasks()
    health = CandidateHealth(upstreams.candidates, registry)
    pressure = CandidatePressure(upstreams.candidates, registry)
    ops = OpsHandlers(registry, readiness, partial(_candidate_detail, health, pressure))
    app[UPSTREAMS] = upstreams
    app[BACKGROUND] = tasks
    app[METRICS] = metrics
    app[OPS] = ops
    app[LOAD] = load
    breakers = CandidateBreakers(upstreams.candidates, breaker or BreakerConfig(), registry, trips)
    app[BREAKERS] = breakers
    app[HEALTH] = health
    app[PRESSURE] = pressure

    exchanges = ExchangeHandler(
        upstreams=upstreams,
        flags=flags,
        sink=sink,
        metrics=metrics,
        tasks=tasks,
        limits=limits,
        load=load,
        redact=redact,
        breakers=breakers,
        health=health,
        pressure=pressure,
        shadow_candidates=shadow_candidates,
    )
    response_metrics = ResponseMetrics(registry)
    memory = ResponseMemory(response_store, tasks, response_metrics)
    responses_set = responses_upstreams(upstreams, memory)
    responses = ResponsesHandler(exchanges, responses_set, memory, response_metrics)
    passthrough = PassthroughHandler(upstreams.primary, limits, MIRRORED_ROUTES, redact)
    for path, route in MIRRORED_ROUTES.items():
        handler = responses if route is Route.RESPONSES else exchanges
        app.router.add_post(path, partial(_mirrored, handler, route))
    lookups = ResponseLookups(
        candidates=responses_set.candidates,
        memory=memory,
        passthrough=passthrough,
        limits=limits,
        mirrored=MIRRORED_ROUTES,
        redact=redact,
    )
    app.router.add_route("*", "/v1/responses/{response_id}", lookups.handle)
    app.router.add_route("*", "/v1/responses/{response_id}/{action}", lookups.handle)
    app.router.add_route("*", "/v1/{tail:.*}", passthrough.handle)
    app.router.add_get("/healthz", ops.healthz)
    app.router.add_get("/readyz", ops.readyz)
    app.router.add_get("/metrics", ops.metrics)

    async def lifecycle(_app: web.Application) -> AsyncIterator[None]:
        await upstreams.start()
        watchers = BackgroundTasks()  # probe and scrape loops: they run until cancelled
        try:
            await check_at_start(health, flags)
        except BaseException:
            await upstreams.close()
            raise
        health.start(watchers)
        pressure.start(watchers)
        yield
        await watchers.drain(0)
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
    """Every response carries its request id and who answered, errors included.

    The request id is the exchange id when the handler started one. Only responses
    of recorded exchanges carry ``x-understudy-exchange-id`` (set where they are made).
    """
    response.headers[REQUEST_ID_HEADER] = str(_request_id(request))
    if SERVED_BY_HEADER not in response.headers:
        response.headers[SERVED_BY_HEADER] = "understudy"  # refused before any upstream


def _request_id(request: web.Request) -> uuid.UUID:
    """The exchange id when the handler started one, else the id given on arrival."""
    return request.get(EXCHANGE_ID) or request.get(REQUEST_ID) or uuid.uuid4()


def _candidate_detail(
    health: CandidateHealth, pressure: CandidatePressure
) -> dict[str, dict[str, object]]:
    detail = health.detail()
    for name, entry in detail.items():
        if (load := pressure.detail(name)) is not None:
            entry["load"] = load
    return detail


async def _mirrored(
    handler: ExchangeHandler, route: Route, request: web.Request
) -> web.StreamResponse:
    return await handler.handle(request, route)
