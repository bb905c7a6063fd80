"""The rollout controller, wired: the stage's report from ``understudy.reporting``, the lock.

``stage_report`` is the one place the controller meets the reporting API.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry

from core import ConfigError
from rollout.controller import Controller, Leadership, SoleLeader, StageWindow
from rollout.controller_metrics import ControllerMetrics
from rollout.plan import Stage
from rollout.store import RolloutStore
from storage.database import Database
from storage.leader_lock import AdvisoryLeader
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
            # spawn, not fork: the serving process has threads and an event loop.
            spawn = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(max_workers=1, mp_context=spawn)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, build_report, data, config)

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


async def stage_report(
    db: Database, settings: Settings, window: StageWindow, worker: ReportWorker | None = None
) -> Report | None:
    """The report on the stage's own window with the stage's verdict rules; None without data.

    Without a ``worker`` the statistics run in a thread."""
    from evaluation.report import build_report

    request = ReportRequest(
        candidate=window.candidate,
        first_flag_version=window.first_flag_version,
        stage=window.stage.name,
    )
    try:
        data = await load_report_input(db, request, settings)
    except NoData:
        return None
    config = stage_config(settings, window.stage)
    if worker is not None:
        return await worker.build(data, config)
    return await asyncio.to_thread(build_report, data, config)


def leadership(db: Database) -> Leadership:
    return AdvisoryLeader(db) if db.dialect == "postgresql" else SoleLeader()


def build_controller(
    settings: Settings,
    db: Database,
    store: RolloutStore,
    registry: CollectorRegistry,
    lead: Leadership | None = None,
) -> Controller:
    plan = stage_plan(settings.rollout.plan)

    worker = ReportWorker()

    async def assess(window: StageWindow) -> Report | None:
        return await stage_report(db, settings, window, worker)

    metrics = ControllerMetrics(registry)
    return Controller(
        db, store, plan, assess, lead or leadership(db), metrics, on_stop=worker.close
    )
