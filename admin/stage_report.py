"""``GET rollout/report``'s body: the current stage's report, as the ``report`` command prints it.

The report itself comes from the server's ``StageReportSource``: the controller's own,
built on the stage's own window with the stage's verdict rules, in a worker process,
and kept while the window's data does not change. This module only says what it is
about, or why there is none.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from rollout.controller import StageWindow
from rollout.position import StagePosition
from rollout.views import when
from storage.database import Database


class ReportStatus(StrEnum):
    READY = "ready"
    NO_DATA = "no_data"  # the stage's window holds no exchange to judge yet
    OFF_PLAN = "off_plan"  # the rollout stands on no stage of the plan: no window to judge


@dataclass(frozen=True, slots=True)
class StageReportJson:
    report: Mapping[str, Any] | None  # as ``understudy report --format json``; None: no data
    built_at: datetime


StageReportSource = Callable[[Database, StageWindow], Awaitable[StageReportJson]]


def stage_window(at: StagePosition | None) -> StageWindow | None:
    """The window the controller judges the current stage on; None off the plan."""
    if at is None or at.position.stage is None or at.current.candidate is None:
        return None
    return StageWindow(at.current.candidate, at.position.stage, at.first_version)


def off_plan_body() -> dict[str, Any]:
    return {
        **_body(
            ReportStatus.OFF_PLAN,
            "the rollout is on no stage of the plan (off, no candidate, or a share set by "
            "hand): there is no stage window to report on",
            None,
        ),
        "built_at": None,
        "age_s": None,
        "report": None,
    }


def report_body(window: StageWindow, built: StageReportJson, now: datetime) -> dict[str, Any]:
    status, message = ReportStatus.READY, None
    if built.report is None:
        status = ReportStatus.NO_DATA
        message = (
            f"no exchanges of candidate {window.candidate!r} in stage {window.stage.name} yet "
            f"(flag versions from {window.first_flag_version})"
        )
    return {
        **_body(status, message, window),
        "built_at": when(built.built_at),
        "age_s": round((now - built.built_at).total_seconds(), 3),  # reused while young
        "report": built.report,
    }


def _body(status: ReportStatus, message: str | None, window: StageWindow | None) -> dict[str, Any]:
    return {
        "object": "rollout.report",
        "status": status.value,
        "message": message,
        "stage": window.stage.name if window else None,
        "candidate": window.candidate if window else None,
        "first_flag_version": window.first_flag_version if window else None,
    }
