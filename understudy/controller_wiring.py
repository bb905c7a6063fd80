"""The rollout controller, wired: the stage's report from ``understudy.reporting``, the lock.

``stage_report`` is the one place the controller meets the reporting API;
``StageReports`` keeps the last one, so the controller and the admin API share it.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry

from core import ConfigError
from rollout.controller import Controller, Leadership, SoleLeader, StageWindow
from rollout.controller_metrics import ControllerMetrics
from rollout.plan import Stage
from rollout.store import RolloutStore
from rollout.trips import RecentTrips
from storage.database import Database
from storage.leader_lock import AdvisoryLeader, FileLeader
from storage.window_stamp import WindowStamp, window_stamp
from understudy.lifeline import die_with_parent
from understudy.plan_settings import stage_plan
from understudy.reporting import NoData, ReportRequest, load_report_input
from understudy.settings import Settings

if TYPE_CHECKING:
    from evaluation.config import EvaluationConfig, MetricSpec
    from evaluation.report import Report, ReportInput


def stage_config(settings: Settings, stage: Stage) -> EvaluationConfig:
    """The verdict's configuration for ``stage``: its gates and its minimum number of units."""
    config = settings.evaluation.config()
    metrics = config.metrics
    if stage.gates:
        known: dict[str, MetricSpec] = {m.name: m for m in metrics}
        unknown = [g for g in stage.gates if g not in known]
        if unknown:
            raise ConfigError(
                f"rollout.plan stage {stage.name!r} gates",
                f"unknown metric {unknown[0]!r}; metrics are {', '.join(known)}",
            )
        metrics = tuple(known[g] for g in stage.gates)
    return replace(config, metrics=metrics, min_samples=stage.min_units or config.min_samples)


# The pool's locks are semaphores that multiprocessing's resource tracker, a process of
# its own writing to our standard error, removes when serve is killed outright; it then
# says so in a plain-text warning, a line in the middle of the JSON log. Its children
# take their warning filters from these options.
_TRACKER_WARNINGS = "ignore::UserWarning:multiprocessing.resource_tracker"


def _quiet_resource_tracker() -> None:
    if _TRACKER_WARNINGS not in sys.warnoptions:
        sys.warnoptions.append(_TRACKER_WARNINGS)


class ReportWorker:
    """Builds the controller's reports in a process of its own.

    The statistics hold the GIL for a second or more on a large window: in a thread
    they would stall the event loop that answers clients.
    """

    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None

    async def build(self, data: ReportInput, config: EvaluationConfig) -> Report:
        from evaluation.report import build_report

        if self._pool is None:
            _quiet_resource_tracker()
            # spawn, not fork: the serving process has threads and an event loop.
            spawn = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(
                max_workers=1,
                mp_context=spawn,
                initializer=die_with_parent,  # no orphan if serve is killed outright
                initargs=(os.getpid(),),
            )
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, build_report, data, config)

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


def stage_request(window: StageWindow) -> ReportRequest:
    """What a stage's report covers: its candidate's exchanges from its first flag version."""
    return ReportRequest(
        candidate=window.candidate,
        first_flag_version=window.first_flag_version,
        stage=window.stage.name,
    )


async def stage_report(
    db: Database, settings: Settings, window: StageWindow, worker: ReportWorker | None = None
) -> Report | None:
    """The report on the stage's own window with the stage's verdict rules; None without data.

    Without a ``worker`` the statistics run in a thread."""
    from evaluation.report import build_report

    try:
        data = await load_report_input(db, stage_request(window), settings)
    except NoData:
        return None
    config = stage_config(settings, window.stage)
    if worker is not None:
        return await worker.build(data, config)
    return await asyncio.to_thread(build_report, data, config)


@dataclass(frozen=True, slots=True)
class BuiltReport:
    """A stage's report as built, and what it was built on."""

    window: StageWindow
    stamp: WindowStamp
    report: Report | None  # None: the window held no data
    built_at: datetime
    built_mono: float  # time.monotonic() then, for its age


class StageReports:
    """The current stage's report, rebuilt only when its window's data changed.

    The controller asks every look; a look on an unchanged window costs one stamp query
    instead of seconds of statistics. The admin API may take a report up to
    ``max_age_s`` old without even that. One build at a time: callers meanwhile wait
    for it and share it.
    """

    def __init__(self, settings: Settings, worker: ReportWorker | None = None) -> None:
        self._settings = settings
        self._worker = worker
        self._last: BuiltReport | None = None
        self._building = asyncio.Lock()

    async def get(
        self, db: Database, window: StageWindow, *, max_age_s: float = 0.0
    ) -> BuiltReport:
        last = self._last
        if (
            last is not None
            and last.window == window
            and time.monotonic() - last.built_mono <= max_age_s
        ):
            return last
        async with self._building:
            stamp = await window_stamp(db, stage_request(window).window(window.candidate))
            last = self._last
            if last is not None and last.window == window and last.stamp == stamp:
                return last
            report = await stage_report(db, self._settings, window, self._worker)
            built = BuiltReport(window, stamp, report, datetime.now(UTC), time.monotonic())
            self._last = built
            return built

    def close(self) -> None:
        if self._worker is not None:
            self._worker.close()


def leadership(db: Database) -> Leadership:
    if db.dialect == "postgresql":
        return AdvisoryLeader(db)
    database_file = db.url.database
    if database_file and database_file != ":memory:":  # workers of one host share the file
        return FileLeader(Path(f"{database_file}.controller.lock"))
    return SoleLeader()


def build_controller(
    settings: Settings,
    db: Database,
    store: RolloutStore,
    registry: CollectorRegistry,
    reports: StageReports,
    *,
    trips: RecentTrips | None = None,
    lead: Leadership | None = None,
) -> Controller:
    """The controller; ``trips`` are this replica's breaker trips, turned into rollbacks."""
    plan = stage_plan(settings.rollout.plan)

    async def assess(window: StageWindow) -> Report | None:
        return (await reports.get(db, window)).report

    metrics = ControllerMetrics(registry)
    return Controller(db, store, plan, assess, lead or leadership(db), metrics, trips=trips)
