"""Prometheus gauges for the rollout state a replica serves with."""

from __future__ import annotations

from collections.abc import Callable, Collection

from prometheus_client import CollectorRegistry, Gauge

from core import FlagState, RolloutMode, Route
from rollout.state import RolloutSnapshot


class RolloutMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.percent = Gauge(
            "understudy_rollout_percent",
            "Share of subjects the candidate serves, by route (100 in cutover, 0 when killed).",
            ["route"],
            registry=registry,
        )
        self.version = Gauge(
            "understudy_rollout_flag_version",
            "Version of the rollout flags this replica serves with.",
            registry=registry,
        )
        self.killed = Gauge(
            "understudy_rollout_killed",
            "1 while a kill (the store's, the kill file or one made here through the admin API) "
            "sends every request of the route to the primary only.",
            ["route"],
            registry=registry,
        )
        self.kill_file = Gauge(
            "understudy_rollout_kill_file_present",
            "1 while the kill file exists.",
            registry=registry,
        )
        self.staleness = Gauge(
            "understudy_rollout_flag_staleness_seconds",
            "Seconds since this replica last read the rollout flags from the database.",
            registry=registry,
        )

    def watch_staleness(self, staleness_s: Callable[[], float]) -> None:
        self.staleness.set_function(staleness_s)

    def show(
        self, snapshot: RolloutSnapshot, *, kill_file: bool, killed_here: Collection[Route] = ()
    ) -> None:
        """``killed_here``: routes killed on this replica that the snapshot does not show."""
        self.version.set(snapshot.version)
        self.kill_file.set(1 if kill_file else 0)
        for route in Route:
            state = snapshot.states[route]
            killed = kill_file or state.killed or route in killed_here
            self.killed.labels(route.value).set(1 if killed else 0)
            self.percent.labels(route.value).set(0.0 if killed else served_percent(state))


def served_percent(state: FlagState) -> float:
    """The share of subjects the candidate answers under ``state`` (kill switch aside)."""
    if state.candidate is None:
        return 0.0
    if state.mode is RolloutMode.CUTOVER:
        return 100.0
    return state.percent if state.mode is RolloutMode.SPLIT else 0.0
