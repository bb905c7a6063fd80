"""What a controller look costs at 10k pairs: a full report every look, against reusing the
last report while the stage's window has not changed (one stamp query); and that the
stamp moves whenever the report's data does."""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import select

import migrations
from core.outcome import PairOutcome, ReviewOutcome
from rollout.controller import Assess, Controller, SoleLeader, StageWindow
from rollout.controller_metrics import ControllerMetrics
from rollout.reconcile import HasVerdict
from storage.database import Database
from storage.judgments import Judgment, add_judgments
from storage.models import ReviewerRow
from storage.repository import list_exchanges
from storage.reviewers import add_reviewer
from storage.reviews import CANDIDATE_FIRST, EligiblePair, decide, pending_item, show_pair
from storage.window import ExchangeWindow
from storage.window_stamp import window_stamp
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


async def test_the_window_stamp_moves_with_everything_a_report_reads(database: Database) -> None:
    """New exchanges, judgments and people's decisions move it; an unchanged window does not;
    exchanges before the stage's first flag version are not its business."""
    db = database
    stage = stage_plan(load_settings().rollout.plan).first
    window = ExchangeWindow(CANDIDATE, first_flag_version=2)
    rng = random.Random(5)
    empty = await window_stamp(db, window)
    assert (empty.exchanges, empty.judgments, empty.reviews) == (0, 0, 0)
    await seed_stage(db, stage, 1, Candidate(), 5, rng)  # an earlier stage's
    assert await window_stamp(db, window) == empty
    await seed_stage(db, stage, 2, Candidate(), 5, rng)
    seeded = await window_stamp(db, window)
    assert seeded.exchanges == 5 and seeded.last_exchange_at is not None
    assert await window_stamp(db, window) == seeded  # nothing changed: the same stamp

    pair = (await list_exchanges(db, ExchangeWindow(first_flag_version=2), limit=1))[0]
    now = datetime.now(UTC)
    await add_judgments(db, [Judgment(pair.id, CANDIDATE, "judge", "v1", PairOutcome.TIE)])
    judged = await window_stamp(db, window)
    assert judged.judgments == 1 and judged != seeded

    await add_reviewer(db, "rita", "0" * 64, now, now + timedelta(days=1))
    async with db.engine.connect() as conn:
        rita = (await conn.execute(select(ReviewerRow.id))).scalar_one()
    eligible = EligiblePair(pair.id, pair.route.value, None, "a", "b")
    assert await show_pair(db, rita, CANDIDATE, eligible, CANDIDATE_FIRST, now)
    assert await window_stamp(db, window) == judged  # shown, not decided: no new evidence
    item = await pending_item(db, rita)
    assert item is not None
    assert await decide(db, rita, item.token, ReviewOutcome.CANDIDATE, None, now)
    decided = await window_stamp(db, window)
    assert decided.reviews == 1 and decided != judged
