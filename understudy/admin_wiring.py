"""The admin API and the web UI, built from Settings: mounted on the proxy, or on a port of
their own."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from admin.app import PREFIX as ADMIN_PREFIX
from admin.app import ROLLOUT_API, AdminTokens, create_admin_app, standalone_admin_app
from admin.stage_report import StageReportJson, StageReportSource
from rollout.controller import StageWindow
from rollout.live import LiveFlags
from rollout.store import RolloutStore
from storage.database import Database
from understudy.controller_wiring import StageReports
from understudy.plan_settings import stage_plan
from understudy.settings import Settings
from understudy.ui_wiring import attach_ui

__all__ = ["ADMIN_APP", "ADMIN_PREFIX", "attach_admin"]

# Set on the proxy's app when the admin API has a port of its own: `serve` listens there too.
ADMIN_APP = web.AppKey("admin_app", web.Application)


def report_source(reports: StageReports, max_age_s: float) -> StageReportSource:
    """The stage's report as ``understudy report --format json`` prints it; one up to
    ``max_age_s`` old is reused, so a dashboard polling it does not rebuild it each time."""
    from evaluation.render import report_json

    async def current(db: Database, window: StageWindow) -> StageReportJson:
        built = await reports.get(db, window, max_age_s=max_age_s)
        report = report_json(built.report) if built.report is not None else None
        return StageReportJson(report, built.built_at)

    return current


def attach_admin(
    app: web.Application,
    settings: Settings,
    flags: LiveFlags,
    store_for: Callable[[Database], RolloutStore] | None,
    reports: StageReports,
) -> None:
    """Mount the admin API on ``app``, or keep it aside for its own listener.

    ``store_for`` None: no flag store (the settings are the rollout), changes are refused.
    Without a token the API is mounted all the same, and answers that it is off.
    """
    db = Database(settings.database_url) if store_for is not None else None
    store = store_for(db) if store_for is not None and db is not None else None
    tokens = AdminTokens(settings.admin_token_names())
    # A report as old as one controller look is as fresh as the controller's own.
    source = report_source(reports, settings.rollout.controller.interval_s)
    plan = stage_plan(settings.rollout.plan)
    admin = create_admin_app(tokens, flags, store, db, plan, source if db is not None else None)
    if settings.admin_port is None:
        app.add_subapp(ADMIN_PREFIX, admin)
        attach_ui(app, settings, admin[ROLLOUT_API])
    else:
        app[ADMIN_APP] = standalone_admin_app(admin)
        attach_ui(app[ADMIN_APP], settings, admin[ROLLOUT_API])
