"""Prometheus metrics of the rollout controller."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from rollout.reconcile import TransitionKind
from rollout.trips import TripOutcome


class ControllerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.stage = Gauge(
            "understudy_rollout_stage",
            "Position of the rollout's current stage in the plan (0: the first), -1 off the plan.",
            registry=registry,
        )
        self.transitions = Counter(
            "understudy_rollout_transitions",
            "Rollout transitions this replica's controller made, by kind.",
            ["kind"],
            registry=registry,
        )
        for kind in TransitionKind:
            self.transitions.labels(kind.value)
        self.trips = Counter(
            "understudy_rollout_breaker_trips",
            "This replica's circuit-breaker trips the controller took up, by what it made of "
            "them (rollback, or why not).",
            ["outcome"],
            registry=registry,
        )
        for outcome in TripOutcome:
            self.trips.labels(outcome.value)
        self.last_run = Gauge(
            "understudy_rollout_controller_last_run_timestamp_seconds",
            "When this replica's controller last looked at the rollout (Unix time).",
            registry=registry,
        )
        self.leader = Gauge(
            "understudy_rollout_controller_leader",
            "1 while this replica's controller leads (only the leader changes the rollout).",
            registry=registry,
        )
