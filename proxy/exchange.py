"""The handler for mirrored routes: validate, decide, serve, shadow, record."""

from __future__ import annotations

import asyncio
import functools
import random
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from aiohttp import web

from core import (
    ErrorKind,
    ExchangeSink,
    FlagSource,
    Role,
    Route,
    RoutingDecision,
    UpstreamError,
    UpstreamRequest,
    UpstreamResponse,
)
from proxy.arms import ConcurrencyCaps, call_to_end
from proxy.backpressure import CandidatePressure
from proxy.body import read_body
from proxy.breaker import Admission, CandidateBreakers
from proxy.capture import Capture
from proxy.config import Limits, ShadowCandidate
from proxy.errors import RequestError
from proxy.health import CandidateHealth
from proxy.jsonfast import loads as json_loads
from proxy.load import RequestLoad
from proxy.metrics import ProxyMetrics
from proxy.record import Arm, ExchangeRecord, ExchangeRecorder
from proxy.relay import relay, upstream_failure
from proxy.routing import decide
from proxy.shadows import ShadowCandidates
from proxy.subject import SUBJECT_HEADER, subject_hash, subject_of
from proxy.tasks import BackgroundTasks
from proxy.upstream_set import UpstreamSet
from proxy.upstreams.port import Upstream
from proxy.validation import ParsedRequest, check_headers, parse_request

log = structlog.get_logger("understudy.exchange")

EXCHANGE_ID = web.RequestKey("exchange_id", uuid.UUID)

# Client headers the primary may see; candidates get none of the client's headers.
PRIMARY_HEADERS = ("OpenAI-Organization", "OpenAI-Project", "OpenAI-Beta")
# Every client header read or forwarded: each must be valid text, or the request is refused.
CLIENT_HEADERS = (*PRIMARY_HEADERS, "Authorization", SUBJECT_HEADER)


class ExchangeHandler:
    def __init__(
        self,
        *,
        upstreams: UpstreamSet,
        flags: FlagSource,
        sink: ExchangeSink,
        metrics: ProxyMetrics,
        tasks: BackgroundTasks,
        limits: Limits,
        load: RequestLoad,
        redact: Callable[[str], str],
        breakers: CandidateBreakers,
        health: CandidateHealth,
        pressure: CandidatePressure,
        shadow_candidates: tuple[ShadowCandidate, ...] = (),
    ) -> None:
        self._load = load
        self._breakers = breakers
        self._health = health
        self._pressure = pressure
        self._redact = redact
        self._upstreams = upstreams
        self._flags = flags
        self._metrics = metrics
        self._tasks = tasks
        self._limits = limits
        self._caps = ConcurrencyCaps(upstreams.caps())
        self._recorder = ExchangeRecorder(sink, metrics, tasks, limits, breakers)
        if unknown := {c.name for c in shadow_candidates} - set(upstreams.candidates):
            raise ValueError(f"shadow candidates not configured: {', '.join(sorted(unknown))}")
        self._shadow_candidates = ShadowCandidates(shadow_candidates)

    # -- entry point -------------------------------------------------------------------

    async def handle(self, request: web.Request, route: Route) -> web.StreamResponse:
        exchange_id = uuid.uuid4()
        request[EXCHANGE_ID] = exchange_id  # so even a refusal carries the id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(exchange_id=str(exchange_id), route=route.value)
        try:
            check_headers(request.headers, CLIENT_HEADERS)
            parsed = parse_request(route, await read_body(request, self._limits), self._limits)
            subject = subject_of(parsed.body, request.headers)
            routed = await self._route(exchange_id, parsed, subject)
        except RequestError as exc:
            self._metrics.rejected.labels(route.value, exc.code or str(exc.status)).inc()
            log.info("request_rejected", status=exc.status, code=exc.code, param=exc.param)
            return exc.response()

        record = ExchangeRecord(
            exchange_id,
            datetime.now(UTC),
            routed.parsed,
            subject_hash(routed.subject),
            routed.decision,
            held_back=routed.held_back,
        )
        primary_headers = self._primary_headers(request.headers)
        background = self._start_background(record, primary_headers)
        try:
            return await self._serve(request, record, primary_headers, background)
        except asyncio.CancelledError:  # the client went away while we waited on the upstream
            for arm in record.arms:
                if arm.role is Role.SERVED:
                    arm.capture.finish(ErrorKind.CLIENT_ABORTED)
            raise
        finally:
            # Runs on success, on our error responses and when the client aborts.
            self._recorder.finish(record, background)

    async def _route(self, exchange_id: uuid.UUID, parsed: ParsedRequest, subject: str) -> Routed:
        """Who serves and who is mirrored; a route with more to weigh overrides this."""
        decision = decide(
            self._flags.current(parsed.route),
            subject,
            primary=self._upstreams.primary.name,
            shadow_draw=random.random(),
            noise_draw=random.random(),
        )
        return Routed(parsed, subject, decision)

    def _shadow_body(self, parsed: ParsedRequest, model: str) -> dict[str, Any]:
        """The body a mirror of ``parsed`` sends; a route whose API differs overrides it."""
        return _shadow_body(parsed, model)

    def _served_chunks(
        self, record: ExchangeRecord, arm: Arm, chunks: AsyncIterator[bytes]
    ) -> AsyncIterator[bytes]:
        """The served arm's bytes on their way to the client; a route may look at them."""
        return chunks

    def _primary_headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        out = {name: headers[name] for name in PRIMARY_HEADERS if name in headers}
        if self._upstreams.primary.config.api_key is None and "Authorization" in headers:
            out["Authorization"] = headers["Authorization"]
        return out

    # -- background arms ---------------------------------------------------------------

    def _start_background(
        self, record: ExchangeRecord, primary_headers: dict[str, str]
    ) -> list[asyncio.Task[None]]:
        started = []
        decision, parsed = record.decision, record.parsed
        # The rollout's own shadow, then the shadow candidates' (the flag names the rollout's).
        shadows: tuple[str, ...] = () if decision.shadow is None else (decision.shadow,)
        rollout_candidate = self._flags.current(parsed.route).candidate
        shadows += self._shadow_candidates.choose(decision, rollout_candidate)
        for name in shadows:
            if (task := self._start_shadow(record, name)) is not None:
                started.append(task)
        if decision.noise:
            noise = self._upstreams.noise
            if (skipped := self._skip_reason(noise.name)) is None:
                started.append(self._spawn(record, noise, Role.NOISE, parsed.body, primary_headers))
            else:
                self._metrics.shadows_skipped.labels(noise.name, skipped).inc()
        return started

    def _start_shadow(self, record: ExchangeRecord, name: str) -> asyncio.Task[None] | None:
        """A shadow of one candidate under its own cap and deadline, unless it is skipped."""
        candidate = self._upstreams.candidates[name]
        admission, skipped = self._admit_candidate(name)
        if skipped is not None:
            self._metrics.shadows_skipped.labels(name, skipped).inc()
            record.shadow_skipped = True
            return None
        body = self._shadow_body(record.parsed, candidate.config.mapped_model(record.parsed.model))
        probe = admission is Admission.PROBE
        return self._spawn(record, candidate, Role.SHADOW, body, {}, probe=probe)

    def _start_reverse_shadow(
        self, record: ExchangeRecord, primary_headers: dict[str, str]
    ) -> asyncio.Task[None] | None:
        """The primary on the same request, in the background, when the decision asks for it.

        It runs on the primary's background pool and cap (the noise calls'), so it never
        takes a connection a served request needs.
        """
        if not record.decision.reverse_shadow:
            return None
        primary = self._upstreams.noise
        if (skipped := self._skip_reason(primary.name)) is not None:
            self._metrics.shadows_skipped.labels(primary.name, skipped).inc()
            record.shadow_skipped = True
            return None
        body = self._shadow_body(record.parsed, record.parsed.model)
        return self._spawn(record, primary, Role.REVERSE_SHADOW, body, primary_headers)

    def _admit_candidate(self, name: str) -> tuple[Admission, str | None]:
        """A shadow passes the candidate's health, its queue, the load, its cap, then its
        breaker; else why it is not made.

        The breaker is asked last: a probe it lets through must be a call that is made.
        """
        if not self._health.healthy(name):
            return Admission.REFUSED, "unhealthy"
        if self._pressure.shedding(name):
            return Admission.REFUSED, "backpressure"
        if (skipped := self._skip_reason(name)) is not None:
            return Admission.REFUSED, skipped
        admission = self._breakers.admit(name)
        if admission is Admission.REFUSED:
            self._caps.release(name)
            return admission, "breaker_open"
        return admission, None

    def _skip_reason(self, upstream: str) -> str | None:
        """Why a background call is not started: near overload all are shed, else its cap."""
        if self._load.shedding:
            return "overload"
        return None if self._caps.try_acquire(upstream) else "at_capacity"

    def _spawn(
        self,
        record: ExchangeRecord,
        upstream: Upstream,
        role: Role,
        body: Mapping[str, Any],
        headers: Mapping[str, str],
        *,
        probe: bool = False,
    ) -> asyncio.Task[None]:
        arm = Arm(upstream.name, role, str(body["model"]), Capture(), probe)
        record.arms.append(arm)
        request = UpstreamRequest(record.parsed.route, body, record.parsed.stream, headers)
        return self._tasks.spawn(
            self._run_background(upstream, request, arm.capture),
            name=f"{role.value}:{upstream.name}:{record.id}",
        )

    async def _run_background(
        self, upstream: Upstream, request: UpstreamRequest, capture: Capture
    ) -> None:
        gauge = self._metrics.in_flight_of(upstream.name)
        gauge.inc()
        try:
            await call_to_end(upstream, request, capture)
        except asyncio.CancelledError:
            capture.finish(ErrorKind.TIMEOUT)  # cancelled at shutdown after the grace period
            raise
        finally:
            gauge.dec()
            self._caps.release(upstream.name)

    # -- serving the client --------------------------------------------------------------

    async def _serve(
        self,
        request: web.Request,
        record: ExchangeRecord,
        primary_headers: dict[str, str],
        background: list[asyncio.Task[None]],
    ) -> web.StreamResponse:
        parsed, decision = record.parsed, record.decision
        if decision.served_is_candidate:
            candidate = self._upstreams.candidates[decision.served]
            # Started once the candidate has answered: after a fallback the primary serves.
            reverse = functools.partial(self._start_reverse_shadow, record, primary_headers)
            response = await self._try_candidate(request, record, candidate, reverse, background)
            if response is not None:
                return response
            parsed = record.parsed  # a route may have made the request fit the primary
        primary = self._upstreams.primary
        arm = Arm(primary.name, Role.SERVED, parsed.model, Capture())
        record.arms.append(arm)
        record.served_by = primary.name
        upstream_request = UpstreamRequest(
            parsed.route, parsed.body, parsed.stream, primary_headers, parsed.raw
        )
        try:
            upstream_response = await primary.send(upstream_request)
            arm.capture.status = upstream_response.status
            chunks = self._served_chunks(record, arm, aiter(upstream_response))
            return await relay(
                request, record, arm, upstream_response, chunks, first=None, redact=self._redact
            )
        except UpstreamError as exc:
            arm.capture.finish(exc.kind)
            return upstream_failure(exc, record)

    async def _try_candidate(
        self,
        request: web.Request,
        record: ExchangeRecord,
        candidate: Upstream,
        reverse: Callable[[], asyncio.Task[None] | None],
        background: list[asyncio.Task[None]],
    ) -> web.StreamResponse | None:
        """Serve from the candidate, or return None to fall back before the client saw a byte.

        Streaming: the candidate must deliver its first chunk. Non-streaming: the
        client sees nothing until the whole answer is in, so it must be a JSON object.
        """
        parsed = record.parsed
        if not self._health.healthy(candidate.name):  # straight to the primary, no attempt
            self._fall_back(record, candidate.name, "unhealthy")
            return None
        if not self._caps.try_acquire(candidate.name):
            self._fall_back(record, candidate.name, "at_capacity")
            return None
        admission = self._breakers.admit(candidate.name)
        if admission is Admission.REFUSED:  # straight to the primary: no failed attempt first
            self._caps.release(candidate.name)
            self._fall_back(record, candidate.name, "breaker_open")
            return None
        try:
            model = candidate.config.mapped_model(parsed.model)
            probe = admission is Admission.PROBE
            arm = Arm(candidate.name, Role.SERVED, model, Capture(), probe)
            body = {**parsed.body, "model": model}
            upstream_request = UpstreamRequest(parsed.route, body, parsed.stream, {})
            response: UpstreamResponse | None = None
            first: bytes | None = None
            chunks: AsyncIterator[bytes] | None = None
            try:
                async with asyncio.timeout(candidate.config.timeout_s):
                    response = await candidate.send(upstream_request)
                    arm.capture.status = response.status
                    chunks = self._served_chunks(record, arm, aiter(response))
                    if response.status >= 400:
                        arm.capture.finish(ErrorKind.HTTP_STATUS)
                    elif parsed.stream:
                        first = await anext(chunks, None)
                    else:
                        whole = b"".join([chunk async for chunk in chunks])
                        document = _json_object(whole)
                        if document is not None:
                            first = whole
                            arm.capture.keep_document(document)
            except UpstreamError as exc:
                arm.capture.finish(exc.kind)
            except TimeoutError:
                arm.capture.finish(ErrorKind.TIMEOUT)
            if first is None or response is None or chunks is None:
                if response is not None:
                    await response.aclose()
                arm.capture.finish(ErrorKind.INVALID_RESPONSE)
                arm.role = Role.FAILED_OVER
                record.arms.append(arm)
                self._fall_back(record, candidate.name, arm.capture.error or "unknown")
                return None
            arm.capture.add(first)
            record.arms.append(arm)
            record.served_by = candidate.name
            if (task := reverse()) is not None:
                background.append(task)
            return await relay(
                request, record, arm, response, chunks, first=first, redact=self._redact
            )
        finally:
            self._caps.release(candidate.name)

    def _fall_back(self, record: ExchangeRecord, candidate: str, reason: str) -> None:
        record.fallback = True
        self._metrics.fallbacks.labels(record.parsed.route.value, candidate, reason).inc()


def _shadow_body(parsed: ParsedRequest, model: str) -> dict[str, Any]:
    body = {**parsed.body, "model": model}
    if parsed.stream:
        # Usage in the stream lets the shadow's tokens be counted; only the shadow gets this.
        body["stream_options"] = {
            **(parsed.body.get("stream_options") or {}),
            "include_usage": True,
        }
    return body


@dataclass(frozen=True, slots=True)
class Routed:
    """A checked request with its routing decision."""

    parsed: ParsedRequest
    subject: str
    decision: RoutingDecision
    held_back: str | None = None  # why the candidate is not called where the flag says so


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        document = json_loads(body)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None
