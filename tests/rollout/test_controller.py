"""The controller against a seeded database: it promotes, rolls back and holds, and says why."""

from __future__ import annotations

import json
import multiprocessing
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry

import migrations
from core import RolloutMode
from rollout.changes import NewValues, RolloutAction
from rollout.controller import Controller, SoleLeader, StageWindow
from rollout.controller_metrics import ControllerMetrics
from rollout.reconcile import HasVerdict, TransitionKind
from storage.database import Database
from storage.flags import audit_entries, current_flags
from tests.rollout.stage_traffic import CANDIDATE, Candidate, seed_stage
from understudy.controller_wiring import ReportWorker, stage_report
from understudy.plan_settings import stage_plan
from understudy.settings import Settings, load_settings
from understudy.wiring import rollout_store

GATES = ["latency_total", "error_rate"]
PLAN = [
    {"name": "shadow", "mode": "shadow", "min_units": 300, "max_duration": "1d", "gates": GATES},
    {"name": "25%", "mode": "split", "percent": 25, "min_units": 150, "gates": GATES},
    {"name": "50%", "mode": "split", "percent": 50, "min_units": 150, "gates": GATES},
    {"name": "100%", "mode": "cutover", "percent": 100, "gates": GATES},
]
# Exchanges per look: enough candidate-served requests at the smallest share.
PER_LOOK = {"shadow": 400, "25%": 800, "50%": 400, "100%": 200}


def settings_for(db_url: str) -> Settings:
    return load_settings(
        database_url=db_url,
        candidates=[{"name": CANDIDATE, "base_url": "http://127.0.0.1:9/v1"}],
        rollout={"mode": "shadow", "candidate": CANDIDATE, "plan": PLAN},
        # Three points of extra errors: a few hundred error-free exchanges can show it.
        evaluation={"error_margin": 0.03},
    )


class Clock:
    """The real time, moved ahead by ``ahead`` (rows are stamped with the real time)."""

    def __init__(self) -> None:
        self.ahead = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.ahead


class Rig:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.registry = CollectorRegistry()
        self.clock = Clock()
        self.plan = stage_plan(settings.rollout.plan)
        self.store = rollout_store(settings, db)
        self.metrics = ControllerMetrics(self.registry)

        async def assess(window: StageWindow) -> HasVerdict | None:
            return await stage_report(db, settings, window)

        self.controller = Controller(
            db, self.store, self.plan, assess, SoleLeader(), self.metrics, clock=self.clock
        )
        self.rng = random.Random(7)

    async def seed_current_stage(self, who: Candidate) -> str:
        at = await self.controller.position()
        assert at is not None and at.position.stage is not None
        stage = at.position.stage
        await seed_stage(self.db, stage, at.first_version, who, PER_LOOK[stage.name], self.rng)
        return stage.name

    def sample(self, name: str, **labels: str) -> float:
        value = self.registry.get_sample_value(name, labels or None)
        assert value is not None, name
        return value


@pytest.fixture
async def rig(db_url: str) -> AsyncIterator[Rig]:
    await migrations.upgrade(db_url)
    settings = settings_for(db_url)
    db = Database(db_url)
    r = Rig(db, settings)
    await r.store.ensure_seeded()
    yield r
    await db.dispose()


async def test_a_good_candidate_is_promoted_through_every_stage(rig: Rig) -> None:
    good = Candidate(slowdown=0.9)
    walked = []
    for _ in range(3):
        walked.append(await rig.seed_current_stage(good))
        transition = await rig.controller.tick()
        assert transition is not None, walked
        assert transition.kind is TransitionKind.PROMOTE
        walked.append(transition.to.name)
    assert walked == ["shadow", "25%", "25%", "50%", "50%", "100%"]
    row = (await current_flags(rig.db))[None]
    assert (row.mode, row.percent, row.stage) == (RolloutMode.CUTOVER.value, 100.0, "100%")
    # The last stage has nowhere to go: more good data changes nothing.
    await rig.seed_current_stage(good)
    assert await rig.controller.tick() is None

    entries = [e for e in await audit_entries(rig.db) if e.actor == "controller"]
    assert [e.action for e in entries] == ["promote"] * 3
    for e in entries:
        assert e.verdict is not None and e.verdict["decision"] == "promote"
        assert {m["name"] for m in e.verdict["metrics"]} == set(GATES)  # the stage's gates
        assert e.reason is not None and e.reason.startswith("promote: ")
    # Each stage was judged on its own window: a stage's units are its own exchanges only.
    shadow_promotion = entries[-1]
    assert shadow_promotion.verdict is not None and shadow_promotion.verdict["n"] == 400
    assert rig.sample("understudy_rollout_transitions_total", kind="promote") == 3
    assert rig.sample("understudy_rollout_stage") == 3
    assert rig.sample("understudy_rollout_controller_leader") == 1
    assert rig.sample("understudy_rollout_controller_last_run_timestamp_seconds") > 0


async def test_a_slower_candidate_is_rolled_back_to_shadow_and_paused(rig: Rig) -> None:
    await rig.seed_current_stage(Candidate(slowdown=0.9))
    promoted = await rig.controller.tick()
    assert promoted is not None and promoted.to.name == "25%"
    await rig.seed_current_stage(Candidate(slowdown=1.5))
    transition = await rig.controller.tick()
    assert transition is not None and transition.kind is TransitionKind.ROLLBACK
    row = (await current_flags(rig.db))[None]
    assert (row.mode, row.percent, row.stage, row.paused) == ("shadow", 0.0, "shadow", True)
    entry = (await audit_entries(rig.db, limit=1))[0]
    assert (entry.actor, entry.action) == ("controller", "rollback")
    assert entry.reason == "rollback: guardrail beyond its harm limit (latency_total)"
    assert entry.verdict is not None and entry.verdict["decision"] == "rollback"
    latency = next(m for m in entry.verdict["metrics"] if m["name"] == "latency_total")
    assert latency["label"] == "fail" and latency["estimate"] == pytest.approx(1.5, abs=0.05)
    json.dumps(entry.verdict, allow_nan=False)  # stored as strict JSON
    # Paused after a rollback: the controller leaves the decision to try again to a person.
    await rig.seed_current_stage(Candidate(slowdown=0.9))
    assert await rig.controller.tick() is None
    assert rig.sample("understudy_rollout_transitions_total", kind="rollback") == 1
    assert rig.sample("understudy_rollout_stage") == 0


async def test_an_inconclusive_candidate_holds_and_never_promotes(rig: Rig) -> None:
    # Each arm's own noise is wide: the ratio's interval straddles both limits for long.
    noisy = Candidate(slowdown=1.05, arm_sd=1.2)
    for _ in range(3):
        await rig.seed_current_stage(noisy)
        assert await rig.controller.tick() is None
        rig.clock.ahead += timedelta(hours=6)
    rig.clock.ahead += timedelta(hours=7)  # a day in the stage without a decision
    await rig.seed_current_stage(noisy)
    transition = await rig.controller.tick()
    assert transition is not None and transition.kind is TransitionKind.HOLD
    assert "no promotion after 1.04d in stage shadow (max 1d)" in transition.reason
    row = (await current_flags(rig.db))[None]
    assert (row.mode, row.stage, row.paused) == ("shadow", None, True)
    entry = (await audit_entries(rig.db, limit=1))[0]
    assert (entry.actor, entry.action) == ("controller", "hold")
    assert entry.verdict is not None and entry.verdict["decision"] == "continue"
    assert await rig.controller.tick() is None  # paused: nothing moves
    assert all(e.action != "promote" for e in await audit_entries(rig.db))


async def test_a_manual_change_made_while_the_controller_decides_wins(
    rig: Rig, db_url: str
) -> None:
    settings = settings_for(db_url)

    async def assess_while_a_person_acts(window: StageWindow) -> HasVerdict | None:
        report = await stage_report(rig.db, settings, window)
        await rig.store.change(
            RolloutAction.SET, actor="cli", reason="less shadow", values=NewValues(shadow_rate=0.5)
        )
        return report

    racing = Controller(
        rig.db, rig.store, rig.plan, assess_while_a_person_acts, SoleLeader(), rig.metrics
    )
    await rig.seed_current_stage(Candidate(slowdown=0.9))
    assert await racing.tick() is None  # it would have promoted: the person's change won
    row = (await current_flags(rig.db))[None]
    assert (row.mode, row.shadow_rate) == ("shadow", 0.5)
    assert all(e.actor != "controller" for e in await audit_entries(rig.db))
    assert await rig.controller.tick() is not None  # the next look decides on the new version


async def test_the_report_worker_gives_the_same_verdict_from_its_own_process(
    rig: Rig, db_url: str
) -> None:
    settings = settings_for(db_url)
    await rig.seed_current_stage(Candidate(slowdown=0.9))
    at = await rig.controller.position()
    assert at is not None and at.position.stage is not None
    window = StageWindow(CANDIDATE, at.position.stage, at.first_version)
    worker = ReportWorker()
    try:
        in_process = await stage_report(rig.db, settings, window, worker)
        assert in_process is not None
        assert multiprocessing.active_children()  # built in a worker process
    finally:
        worker.close()
    in_thread = await stage_report(rig.db, settings, window)
    assert in_thread is not None
    assert in_process.verdict == in_thread.verdict
