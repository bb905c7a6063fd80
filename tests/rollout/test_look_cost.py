"""What a controller look costs at 10k pairs: a full report every look, against reusing the
last report while the stage's window has not changed (one stamp query)."""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

import migrations
from rollout.controller import Assess, Controller, SoleLeader, StageWindow
from rollout.controller_metrics import ControllerMetrics
from rollout.reconcile import HasVerdict
from storage.database import Database
from tests.rollout.conftest import figure
from tests.rollout.stage_traffic import CANDIDATE, Candidate, seed_stage
from understudy.controller_wiring import StageReports, stage_report
from understudy.plan_settings import stage_plan
from understudy.settings import load_settings
from understudy.wiring import rollout_store

__all__ = ["figure"]

PAIRS = 10_000
LOOKS = 3


@pytest.mark.slow
async def test_a_look_at_an_unchanged_window_reuses_the_report(
    tmp_path: Path, figure: Callable[[str], None]
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'understudy.db'}"
    await migrations.upgrade(url)
    # The default plan: its shadow stage waits an hour and a person, so no look moves it.
    settings = load_settings(
        database_url=url,
        candidates=[{"name": CANDIDATE, "base_url": "http://127.0.0.1:9/v1"}],
        rollout={"mode": "shadow", "candidate": CANDIDATE},
    )
    plan = stage_plan(settings.rollout.plan)
    async with Database(url) as db:
        store = rollout_store(settings, db)
        await store.ensure_seeded()
        rng = random.Random(11)
        await seed_stage(db, plan.first, 1, Candidate(slowdown=0.9), PAIRS, rng)

        def controller(assess: Assess) -> Controller:
            metrics = ControllerMetrics(CollectorRegistry())
            return Controller(db, store, plan, assess, SoleLeader(), metrics)

        async def cpu_per_look(looking: Controller) -> float:
            """CPU seconds of this process per look, statistics included (built in a thread)."""
            spent = []
            for _ in range(LOOKS):
                start = time.process_time()
                assert await looking.tick() is None
                spent.append(time.process_time() - start)
            return statistics.median(spent)

        async def every_look(window: StageWindow) -> HasVerdict | None:
            return await stage_report(db, settings, window)

        reports = StageReports(settings)
        seen: list[int] = []

        async def reusing(window: StageWindow) -> HasVerdict | None:
            built = (await reports.get(db, window)).report
            seen.append(built.n if built is not None else 0)
            return built

        rebuilding_s = await cpu_per_look(controller(every_look))
        reuser = controller(reusing)
        start = time.process_time()
        await reuser.tick()  # the first look builds it
        first_s = time.process_time() - start
        reused_s = await cpu_per_look(reuser)
        await seed_stage(db, plan.first, 1, Candidate(slowdown=0.9), 1, rng)
        start = time.process_time()
        await reuser.tick()  # one new exchange: built again
        changed_s = time.process_time() - start

    figure(
        f"CPU per look at {PAIRS:,} pairs: {rebuilding_s:.2f} s building the report every "
        f"look, {reused_s * 1000:.1f} ms reusing it on an unchanged window; first look "
        f"{first_s:.2f} s, after one new exchange {changed_s:.2f} s"
    )
    assert seen == [PAIRS] * (1 + LOOKS) + [PAIRS + 1]
    assert reused_s < rebuilding_s / 20, (reused_s, rebuilding_s)
