"""A kill held on one replica: in force at once, until the store it follows shows it."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from prometheus_client import CollectorRegistry

from core import Route
from rollout.live import LiveFlags
from rollout.metrics import RolloutMetrics
from rollout.state import RolloutSnapshot
from tests.rollout.conftest import RULES, SEED

SPLIT = replace(SEED, mode="split", percent=50.0, version=3)


def snapshot(**changes: Any) -> RolloutSnapshot:
    return RolloutSnapshot.build({None: replace(SPLIT, **changes)}, RULES)


def killed_gauge(registry: CollectorRegistry, route: Route) -> float | None:
    return registry.get_sample_value("understudy_rollout_killed", {"route": route.value})


def test_a_held_kill_ends_when_the_store_shows_its_version() -> None:
    registry = CollectorRegistry()
    flags = LiveFlags(snapshot(), RolloutMetrics(registry))
    flags.hold_kill([Route.CHAT])
    assert flags.current(Route.CHAT).killed and not flags.current(Route.EMBEDDINGS).killed
    assert (
        killed_gauge(registry, Route.CHAT) == 1 and killed_gauge(registry, Route.COMPLETIONS) == 0
    )
    flags.replace(snapshot(version=4))  # an unrelated newer version: the kill is not stored yet
    assert flags.current(Route.CHAT).killed and flags.held_kills == {Route.CHAT}
    flags.kill_stored([Route.CHAT], 6)
    flags.replace(snapshot(version=5))
    assert flags.current(Route.CHAT).killed  # still held: the store is behind the kill
    flags.replace(snapshot(version=6, killed=True))
    assert flags.held_kills == frozenset() and flags.current(Route.CHAT).killed  # the store's
    flags.replace(snapshot(version=7))  # unkilled in the store, by anyone: followed
    assert not flags.current(Route.CHAT).killed and killed_gauge(registry, Route.CHAT) == 0


def test_a_held_kill_outlasts_an_unreadable_store_until_released() -> None:
    flags = LiveFlags(snapshot(), RolloutMetrics(CollectorRegistry()))
    flags.hold_kill(list(Route))
    for _ in range(3):
        flags.replace(snapshot(version=3))  # the follower keeps the last state it read
    assert all(flags.current(r).killed for r in Route)
    flags.release_kill([Route.EMBEDDINGS])
    assert not flags.current(Route.EMBEDDINGS).killed and flags.current(Route.CHAT).killed
    flags.set_kill_file(True)
    flags.release_kill(list(Route))
    assert all(flags.current(r).killed for r in Route)  # the kill file still rules
    flags.set_kill_file(False)
    assert not any(flags.current(r).killed for r in Route)
