"""A circuit-breaker trip becomes a recorded rollback within one controller interval.

The server as ``serve`` builds it, on SQLite, with a fake candidate switched to fail and
traffic through the openai SDK; then two replicas' controllers taking one failure each,
on both databases: the store's version check keeps it to one rollback row.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

import migrations
from core import GuardrailTrip, TripCause
from rollout.controller import Controller, SoleLeader, StageWindow
from rollout.controller_metrics import ControllerMetrics
from rollout.position import locate_stage
from rollout.reconcile import HasVerdict
from rollout.trips import PendingTrip, RecentTrips, TripOutcome, trip_outcome, trip_reason
from storage.database import Database
from storage.flags import FlagRecord, audit_entries, current_flags
from tests.fakes import Fault
from tests.proxy.conftest import Rig, RigFactory, chat, make_rig
from understudy.plan_settings import stage_plan
from understudy.settings import load_settings
from understudy.wiring import rollout_store

__all__ = ["make_rig"]

INTERVAL_S = 2.0  # the controller's interval: the rollback must come within one


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'understudy.db'}"


async def start(make_rig: RigFactory, tmp_path: Path, rollout: dict[str, Any]) -> Rig:
    return await make_rig(
        record=True,
        database_url=sqlite_url(tmp_path),
        storage={"spill_dir": str(tmp_path / "spill")},
        rollout={
            "candidate": "local",
            "poll_interval_s": 0.25,
            "controller": {"interval_s": INTERVAL_S},
            **rollout,
        },
        breaker={"consecutive_failures": 3, "cooldown_s": 60},
    )


async def fail_until_open(rig: Rig) -> int:
    """Requests from different users until the candidate's breaker opens; each is answered."""
    rig.candidate.fault = Fault.HTTP_500
    client = rig.client()
    sent = 0
    while rig.metric("understudy_breaker_state", candidate="local") != 2:
        assert sent < 200, "the breaker never opened"
        sent += 1
        answer = await client.chat.completions.create(**chat(user=f"user-{sent}"))
        assert answer.choices[0].message.content  # the primary answered
    return sent


async def wait_for(check: Callable[[], bool], limit_s: float) -> float:
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < limit_s, "not within the limit"
        await asyncio.sleep(0.01)
    return time.monotonic() - start


@pytest.mark.parametrize(("mode", "percent"), [("cutover", 100), ("split", 50)])
async def test_a_trip_while_the_candidate_serves_users_is_a_recorded_rollback(
    make_rig: RigFactory, tmp_path: Path, figure: Callable[[str], None], mode: str, percent: int
) -> None:
    rig = await start(make_rig, tmp_path, {"mode": mode, "percent": percent})
    sent = await fail_until_open(rig)
    rollbacks = "understudy_rollout_transitions_total"
    took = await wait_for(lambda: rig.metric(rollbacks, kind="rollback") == 1, INTERVAL_S)
    figure(f"{mode}: breaker open after {sent} requests; rollback stored {took:.3f} s later")

    async with Database(sqlite_url(tmp_path)) as db:
        row = (await current_flags(db))[None]
        entries = await audit_entries(db)
    assert (row.mode, row.percent, row.stage, row.paused) == ("shadow", 0.0, "shadow", True)
    assert [(e.actor, e.action) for e in entries] == [
        ("controller", "rollback"),
        ("settings", "seed"),
    ]
    reason = entries[0].reason or ""
    assert reason.startswith("rollback: circuit breaker of candidate 'local' opened")
    assert "(consecutive_failures: 3 of 3 calls failed)" in reason
    assert rig.metric("understudy_rollout_breaker_trips_total", outcome="rollback") == 1
    transitions = [e for e in rig.log_events() if e["event"] == "rollout_transition"]
    assert [(e["kind"], e["to_stage"], e["reason"]) for e in transitions] == [
        ("rollback", "shadow", reason)
    ]
    # Every replica follows the store: the candidate serves nobody any more.
    await wait_for(
        lambda: rig.metric("understudy_rollout_percent", route="chat.completions") == 0, 1
    )


async def test_a_trip_in_shadow_rolls_nothing_back_and_says_so(
    make_rig: RigFactory, tmp_path: Path
) -> None:
    rig = await start(make_rig, tmp_path, {"mode": "shadow", "percent": 0})
    await fail_until_open(rig)  # the shadows failed
    not_serving = "understudy_rollout_breaker_trips_total"
    await wait_for(lambda: rig.metric(not_serving, outcome="not_serving") == 1, INTERVAL_S)
    assert rig.metric(not_serving, outcome="rollback") == 0
    assert rig.metric("understudy_rollout_transitions_total", kind="rollback") == 0
    said = [e for e in rig.log_events() if e["event"] == "rollout_trip_not_acted"]
    assert [(e["candidate"], e["outcome"]) for e in said] == [("local", "not_serving")]
    assert "nothing to roll back" in said[0]["why"]
    async with Database(sqlite_url(tmp_path)) as db:
        entries = await audit_entries(db)
    assert [(e.actor, e.action) for e in entries] == [("settings", "seed")]


def tripped(candidate: str = "local", at: datetime | None = None) -> GuardrailTrip:
    return GuardrailTrip(
        candidate=candidate,
        cause=TripCause.ERROR_RATE,
        at=at or datetime.now(UTC),
        failures=11,
        calls=20,
        cooldown_s=30.0,
    )


async def test_two_replicas_tripping_on_one_failure_make_one_rollback_row(db_url: str) -> None:
    await migrations.upgrade(db_url)
    settings = load_settings(
        database_url=db_url,
        candidates=[{"name": "local", "base_url": "http://127.0.0.1:9/v1"}],
        rollout={"mode": "split", "candidate": "local", "percent": 25},
    )
    plan = stage_plan(settings.rollout.plan)

    async def no_report(_window: StageWindow) -> HasVerdict | None:
        return None

    async with Database(db_url) as db:
        store = rollout_store(settings, db)
        await store.ensure_seeded()
        replicas = []
        for _ in range(2):
            registry, trips = CollectorRegistry(), RecentTrips()
            controller = Controller(
                db,
                store,
                plan,
                no_report,
                SoleLeader(),
                ControllerMetrics(registry),
                trips=trips,
            )
            trips.tripped(tripped())
            replicas.append((controller, trips, registry))
        done = await asyncio.gather(*(c.guard() for c, _, _ in replicas))
        assert sum(d is not None for d in done) == 1
        entries = await audit_entries(db)
        row = (await current_flags(db))[None]
    assert [(e.actor, e.action) for e in entries] == [
        ("controller", "rollback"),
        ("settings", "seed"),
    ]
    assert (row.mode, row.stage, row.paused) == ("shadow", "shadow", True)

    def counted(registry: CollectorRegistry, outcome: TripOutcome) -> float:
        value = registry.get_sample_value(
            "understudy_rollout_breaker_trips_total", {"outcome": outcome.value}
        )
        assert value is not None
        return value

    for outcome in (TripOutcome.ROLLBACK, TripOutcome.NOT_SERVING):  # the other found shadow
        assert sorted(counted(r, outcome) for _, _, r in replicas) == [0, 1], outcome
    assert all(not trips.pending() for _, trips, _ in replicas)


def test_what_a_trip_means_for_the_rollout() -> None:
    plan = stage_plan(load_settings().rollout.plan)
    entered = datetime(2026, 1, 1, tzinfo=UTC)
    split = FlagRecord(
        route=None,
        mode="split",
        candidate="local",
        percent=25.0,
        shadow_rate=1.0,
        noise_rate=0.0,
        version=4,
        changed_at=entered,
    )
    at = locate_stage(plan, [split])
    later = entered + timedelta(minutes=1)
    assert trip_outcome(tripped(at=later), at) is TripOutcome.ROLLBACK
    assert trip_outcome(tripped("other", later), at) is TripOutcome.OTHER_CANDIDATE
    assert trip_outcome(tripped(at=entered - timedelta(seconds=1)), at) is TripOutcome.BEFORE_STAGE
    for row in (
        replace(split, killed=True),
        replace(split, mode="shadow", percent=0.0),
        replace(split, percent=0.0),
        replace(split, mode="off"),
    ):
        assert trip_outcome(tripped(at=later), locate_stage(plan, [row])) is TripOutcome.NOT_SERVING
    assert trip_outcome(tripped(at=later), None) is TripOutcome.NOT_SERVING
    reason = trip_reason(PendingTrip(tripped(at=later), 3))
    assert reason == (
        "rollback: circuit breaker of candidate 'local' opened (error_rate: 11 of 20 calls "
        "failed) at 2026-01-01T00:01:00Z; 3 trips since the last look"
    )
