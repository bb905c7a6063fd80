"""Candidate health: each watched candidate is probed on an interval; the verdict is in memory.

The request path asks ``healthy(name)``, one set lookup; a background loop per watched
candidate keeps the answer fresh. An unhealthy candidate gets no shadows and serves no
one until a probe passes again. Health never makes the proxy unready: the primary serves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge

from core import ConfigError, FlagSource, RolloutMode, Route
from proxy.tasks import BackgroundTasks
from proxy.upstreams.port import ProbeResult, Upstream

log = structlog.get_logger("understudy.health")


class HealthState(StrEnum):
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"
    UNCHECKED = "unchecked"  # no probes configured, or none answered yet


class CandidateHealth:
    """Every candidate's last probe result, its metrics, and the loops that probe."""

    def __init__(self, candidates: Mapping[str, Upstream], registry: CollectorRegistry) -> None:
        self._watched = {
            name: upstream
            for name, upstream in candidates.items()
            if upstream.config.watch.probe_interval_s is not None
        }
        self._unhealthy: set[str] = set()
        self._last: dict[str, tuple[ProbeResult, datetime]] = {}
        self._names = list(candidates)
        self._healthy_gauge = Gauge(
            "understudy_candidate_healthy",
            "1 when the candidate's last health probe passed, 0 when it failed.",
            ["candidate"],
            registry=registry,
        )
        self._probes = Counter(
            "understudy_candidate_probes",
            "Health probes by result: ok, or what failed (an error kind, a status, model missing).",
            ["candidate", "result"],
            registry=registry,
        )

    def healthy(self, candidate: str) -> bool:
        """False only while the candidate's last probe failed."""
        return candidate not in self._unhealthy

    def state(self, candidate: str) -> HealthState:
        if candidate not in self._last:
            return HealthState.UNCHECKED
        return HealthState.UNHEALTHY if candidate in self._unhealthy else HealthState.HEALTHY

    def record(self, candidate: str, result: ProbeResult) -> None:
        was = self.state(candidate)
        self._last[candidate] = (result, datetime.now(UTC))
        self._probes.labels(candidate, "ok" if result.healthy else result.problem or "failed").inc()
        self._healthy_gauge.labels(candidate).set(1 if result.healthy else 0)
        if result.healthy:
            self._unhealthy.discard(candidate)
        else:
            self._unhealthy.add(candidate)
        now = self.state(candidate)
        if now is HealthState.UNHEALTHY and was is not HealthState.UNHEALTHY:
            log.warning(
                "candidate_unhealthy",
                candidate=candidate,
                problem=result.problem,
                missing_models=list(result.missing_models),
            )
        elif now is HealthState.HEALTHY and was is HealthState.UNHEALTHY:
            log.info("candidate_recovered", candidate=candidate)

    async def probe(self, candidate: str) -> ProbeResult:
        upstream = self._watched[candidate]
        result = await upstream.probe(upstream.config.watch.probe_timeout_s)
        self.record(candidate, result)
        return result

    async def probe_all(self) -> dict[str, ProbeResult]:
        """One probe of every watched candidate, side by side."""
        names = list(self._watched)
        results = await asyncio.gather(*(self.probe(name) for name in names))
        return dict(zip(names, results, strict=True))

    def start(self, tasks: BackgroundTasks) -> None:
        for name in self._watched:
            tasks.spawn(self._keep_probing(name), name=f"health:{name}")

    async def _keep_probing(self, candidate: str) -> None:
        interval = self._watched[candidate].config.watch.probe_interval_s or 0.0
        while True:
            await asyncio.sleep(interval)
            await self.probe(candidate)

    def detail(self) -> dict[str, dict[str, Any]]:
        """Each candidate's health for /readyz, as JSON."""
        out: dict[str, dict[str, Any]] = {}
        for name in self._names:
            entry: dict[str, Any] = {"health": self.state(name).value}
            if (last := self._last.get(name)) is not None:
                result, at = last
                entry["checked_at"] = at.isoformat()
                entry["problem"] = result.problem
                entry["missing_models"] = list(result.missing_models)
            out[name] = entry
        return out


def serving_candidates(flags: FlagSource) -> set[str]:
    """The candidates the rollout serves users from now, on any route."""
    serving = set()
    for route in Route:
        flag = flags.current(route)
        if flag.killed or flag.candidate is None:
            continue
        if flag.mode is RolloutMode.CUTOVER or (
            flag.mode is RolloutMode.SPLIT and flag.percent > 0
        ):
            serving.add(flag.candidate)
    return serving


async def check_at_start(health: CandidateHealth, flags: FlagSource) -> None:
    """Probe every watched candidate once before serving.

    A mapped model the candidate does not serve is an error when the rollout serves
    users from that candidate (raises ConfigError: the proxy does not start), and a
    warning otherwise (shadow: its shadows are skipped until the model appears).
    """
    results = await health.probe_all()
    lacking = {name: r.missing_models for name, r in results.items() if r.missing_models}
    serving = serving_candidates(flags) if lacking else set()  # flags read only when needed
    for name, models in lacking.items():
        missing = ", ".join(repr(m) for m in models)
        if name in serving:
            raise ConfigError(
                f"candidate {name!r} model_map",
                f"the candidate does not serve {missing}, and the rollout serves users from it",
            )
        log.warning("candidate_model_missing", candidate=name, models=list(models))
