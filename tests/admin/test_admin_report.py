"""``GET rollout/report``: the current stage's report, the controller's own, as the report
command prints it; tokens as every admin route; off the plan and no data said plainly;
a dashboard polling it does not rebuild it each time."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

from core import RolloutMode
from evaluation.render import report_json
from rollout.controller import StageWindow
from storage.database import Database
from tests.admin.conftest import ALICE, AdminRig, RigFactory
from tests.faults.conftest import figure
from tests.rollout.stage_traffic import CANDIDATE, Candidate, seed_stage
from understudy.controller_wiring import stage_report
from understudy.plan_settings import stage_plan

__all__ = ["figure"]

PATH = "/rollout/report"
SHADOW = {"mode": "shadow", "candidate": CANDIDATE, "percent": 0, "poll_interval_s": 0.25}


async def seed(rig: AdminRig, n: int, seed: int) -> StageWindow:
    """``n`` shadow pairs in the plan's first stage, at the seeded flag version 1."""
    stage = stage_plan(rig.settings.rollout.plan).first
    assert stage.mode is RolloutMode.SHADOW
    async with Database(rig.settings.database_url) as db:
        await seed_stage(db, stage, 1, Candidate(slowdown=0.9), n, random.Random(seed))
    return StageWindow(CANDIDATE, stage, 1)


async def test_the_report_route_is_guarded_like_every_admin_route(
    make_admin_rig: RigFactory,
) -> None:
    rig = await make_admin_rig(rollout=SHADOW)
    for token in (None, "", ALICE[:-1], "not-a-token-at-all-000"):
        status, answer = await rig.call("GET", PATH, token=token)
        assert status == 401 and answer["error"]["code"] == "invalid_admin_token"
    off = await make_admin_rig(rollout=SHADOW, admin_tokens={})
    status, answer = await off.call("GET", PATH)
    assert status == 403 and answer["error"]["code"] == "admin_api_off"
    settings_only = await make_admin_rig(rollout=SHADOW, storage={"enabled": False})
    status, answer = await settings_only.call("GET", PATH)
    assert status == 503 and answer["error"]["code"] == "flag_store_unavailable"


async def test_off_the_plan_and_without_data_it_says_so(make_admin_rig: RigFactory) -> None:
    rig = await make_admin_rig(rollout=SHADOW)
    status, body = await rig.call("GET", PATH)
    assert status == 200, body
    assert (body["object"], body["status"], body["report"]) == ("rollout.report", "no_data", None)
    assert (body["stage"], body["candidate"], body["first_flag_version"]) == ("shadow", "local", 1)
    assert body["message"] == (
        "no exchanges of candidate 'local' in stage shadow yet (flag versions from 1)"
    )
    # 33 % set by hand is on no stage of the plan: there is no stage window.
    status, _ = await rig.call("POST", "/rollout/percent", json={"percent": 33, "reason": "t"})
    assert status == 200
    status, body = await rig.call("GET", PATH)
    assert status == 200 and body["status"] == "off_plan" and body["report"] is None
    assert body["stage"] is None and "no stage of the plan" in body["message"]


async def test_the_report_is_the_controllers_own_verdict_and_rendering(
    make_admin_rig: RigFactory,
) -> None:
    # The controller off: its look at start-up (no data yet) would be reused for an interval.
    rig = await make_admin_rig(rollout={**SHADOW, "controller": {"enabled": False}})
    window = await seed(rig, 400, seed=3)
    status, body = await rig.call("GET", PATH)
    assert status == 200 and body["status"] == "ready", body
    async with Database(rig.settings.database_url) as db:
        expected = await stage_report(db, rig.settings, window)
    assert expected is not None
    report = body["report"]
    assert report["verdict"]["decision"] == expected.verdict.decision.value
    assert report["verdict"]["reason"] == expected.verdict.reason
    assert report["n"] == expected.n == 400 and report["stage"] == "shadow"
    # The JSON `understudy report --format json` prints, value for value.
    assert report == report_json(expected)


async def test_a_polling_dashboard_does_not_rebuild_it_each_time(
    make_admin_rig: RigFactory, figure: Callable[[str], None]
) -> None:
    interval = 1.0  # the controller's interval: how old a report the API may give
    controller = {"enabled": False, "interval_s": interval}  # only the API builds reports
    rig = await make_admin_rig(rollout={**SHADOW, "controller": controller})
    await seed(rig, 400, seed=4)

    async def get() -> tuple[float, int, float]:
        start = time.perf_counter()
        status, body = await rig.call("GET", PATH)
        assert status == 200 and body["status"] == "ready", body
        return time.perf_counter() - start, body["report"]["n"], body["age_s"]

    built_s, n, age = await get()
    reused_s, n_again, age_again = await get()
    assert (n, n_again) == (400, 400) and age_again >= age
    await seed(rig, 100, seed=5)
    _, n_soon, _ = await get()
    assert n_soon == 400  # younger than the interval: not rebuilt for new data
    await asyncio.sleep(interval)
    rebuilt_s, n_later, age_later = await get()
    assert n_later == 500 and age_later < interval  # older: rebuilt, as the data changed
    await asyncio.sleep(interval)
    checked_s, n_still, age_still = await get()
    # The data did not change: the window's stamp says so and the report is kept.
    assert n_still == 500 and age_still >= interval
    figure(
        f"GET rollout/report: {built_s * 1000:.0f} ms building (worker start included), "
        f"{rebuilt_s * 1000:.0f} ms rebuilding, {reused_s * 1000:.1f} ms reused, "
        f"{checked_s * 1000:.1f} ms reused after checking the window"
    )
    assert checked_s < rebuilt_s / 3, (checked_s, rebuilt_s)
