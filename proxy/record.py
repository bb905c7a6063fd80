"""An exchange in progress, and turning it into a recorded Exchange and its log line."""

from __future__ import annotations

import asyncio
import functools
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog

from core import ErrorKind, Exchange, ExchangeSink, Role, Route, RoutingDecision
from proxy.breaker import CandidateBreakers
from proxy.capture import Capture
from proxy.config import Limits
from proxy.metrics import ProxyMetrics
from proxy.observe import observe
from proxy.responses.observe import observe_responses
from proxy.tasks import BackgroundTasks
from proxy.validation import ParsedRequest

log = structlog.get_logger("understudy.exchange")


@dataclass(slots=True, repr=False)
class Arm:
    """One upstream call of an exchange, while it runs."""

    upstream: str
    role: Role
    model: str
    capture: Capture
    probe: bool = False  # the call that decides whether the candidate's open breaker closes

    def __repr__(self) -> str:
        # Names only: the capture holds the answer.
        return f"Arm(upstream={self.upstream!r}, role={self.role.value})"


@dataclass(slots=True, repr=False)
class ExchangeRecord:
    """What is known about an exchange while its arms run.

    Its repr shows only the id: asyncio prints a failed callback's arguments, and the
    record holds prompts and answers.
    """

    id: uuid.UUID
    created_at: datetime
    parsed: ParsedRequest
    subject_hash: str
    decision: RoutingDecision
    served_by: str = ""
    fallback: bool = False
    shadow_skipped: bool = False
    held_back: str | None = None  # why the candidate is not called where the flag says so
    pending: int = 0  # background arms still running after the client was answered
    arms: list[Arm] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"ExchangeRecord(id={self.id})"


class ExchangeRecorder:
    """Hands each finished exchange to the sink, once all its arms are done."""

    def __init__(
        self,
        sink: ExchangeSink,
        metrics: ProxyMetrics,
        tasks: BackgroundTasks,
        limits: Limits,
        breakers: CandidateBreakers,
    ) -> None:
        self._sink = sink
        self._breakers = breakers
        self._metrics = metrics
        self._tasks = tasks
        self._limits = limits

    def finish(self, record: ExchangeRecord, background: list[asyncio.Task[None]]) -> None:
        """Record now, or when the last background arm still running is done.

        Done-callbacks rather than a waiting task: one task less per mirrored request.
        They also fire when shutdown cancels the arms, so those exchanges are recorded too.
        """
        pending = [t for t in background if not t.done()]
        if not pending:
            self._emit(record)
            return
        record.pending = len(pending)
        arm_done = functools.partial(self._arm_done, record)
        for task in pending:
            task.add_done_callback(arm_done)

    def _arm_done(self, record: ExchangeRecord, _task: asyncio.Task[None]) -> None:
        record.pending -= 1
        if record.pending == 0:
            self._emit(record)

    def _emit(self, record: ExchangeRecord) -> None:
        """Hand the exchange to the sink and log it; never raises.

        It runs in a done-callback or in the handler's ``finally``: an exception from
        either would be printed with the record (asyncio's handle repr) or replace the
        client's answer. A failure is counted as dropped and logged without the record.
        """
        try:
            exchange = self._exchange_of(record)
        except Exception as exc:
            self._dropped(record, "record_failed", exc)
            return
        try:
            self._sink.put(exchange)
        except Exception as exc:  # a sink must never take the proxy down
            self._dropped(record, "sink_failed", exc)
        try:
            _log_exchange(exchange, record)
        except Exception as exc:
            log.error("exchange_log_failed", exchange_id=str(record.id), error=type(exc).__name__)

    def _dropped(self, record: ExchangeRecord, reason: str, exc: Exception) -> None:
        self._metrics.sink_dropped.inc()
        # The exception's type only: its message or repr may quote the exchange.
        log.error(
            "exchange_dropped",
            exchange_id=str(record.id),
            reason=reason,
            error=type(exc).__name__,
        )

    def _exchange_of(self, record: ExchangeRecord) -> Exchange:
        route, stream = record.parsed.route, record.parsed.stream
        observations = []
        for arm in record.arms:
            # An arm still running here was cut off by shutdown after its grace period.
            arm.capture.finish(ErrorKind.TIMEOUT if arm.capture.ended is None else None)
            obs = (
                observe_responses(
                    arm.capture,
                    upstream=arm.upstream,
                    role=arm.role,
                    model=arm.model,
                    stream=stream,
                    max_chars=self._limits.max_recorded_chars,
                )
                if route is Route.RESPONSES
                else observe(
                    arm.capture,
                    upstream=arm.upstream,
                    role=arm.role,
                    model=arm.model,
                    route=route,
                    stream=stream,
                    max_chars=self._limits.max_recorded_chars,
                )
            )
            self._metrics.observe_arm(route, obs)
            self._breakers.record(obs, probe=arm.probe)
            observations.append(obs)
        return Exchange(
            id=record.id,
            created_at=record.created_at,
            route=route,
            requested_model=record.parsed.model,
            subject_hash=record.subject_hash,
            stream=stream,
            decision=record.decision,
            served_by=record.served_by,
            fallback=record.fallback,
            request=record.parsed.body,
            observations=tuple(observations),
        )


def _log_exchange(exchange: Exchange, record: ExchangeRecord) -> None:
    fields: dict[str, Any] = {
        "model": exchange.requested_model,
        "stream": exchange.stream,
        "mode": exchange.decision.mode.value,
        "served_by": exchange.served_by,
        "fallback": exchange.fallback,
        "flag_version": exchange.decision.flag_version,
    }
    for obs in exchange.observations:
        prefix = obs.role.value
        if f"{prefix}_status" in fields:  # several shadows: the later ones by name
            prefix = f"{prefix}_{obs.upstream}"
        fields[f"{prefix}_status"] = obs.status
        fields[f"{prefix}_latency_ms"] = _ms(obs.latency_ms)
        fields[f"{prefix}_ttft_ms"] = _ms(obs.ttft_ms)
        if obs.error_kind is not None:
            fields[f"{prefix}_error"] = obs.error_kind.value
    if record.shadow_skipped:
        fields["shadow_skipped"] = True
    if record.held_back is not None:
        fields["candidate_held_back"] = record.held_back
    log.info("exchange", **fields)


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
