"""The web UI, built from Settings and mounted at ``/ui`` wherever the admin API is served."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from aiohttp import web

from admin.auth import AdminTokens
from admin.rollout_api import RolloutApi
from dashboards.app import PREFIX as UI_PREFIX
from dashboards.app import create_ui_app
from dashboards.config import UiConfig, UiContext
from storage.database import Database
from understudy.lineup_report import lineup_since
from understudy.reporting import self_hosted_for
from understudy.settings import Settings

if TYPE_CHECKING:
    from evaluation.lineup import Lineup

__all__ = ["UI_PREFIX", "attach_ui", "ui_config"]


def ui_config(settings: Settings) -> UiConfig:
    ui = settings.ui
    only = settings.candidates[0].name if len(settings.candidates) == 1 else None
    names = [c.name for c in settings.candidates]
    hosted = {n: h for n in names if (h := self_hosted_for(settings, n)) is not None}
    return UiConfig(
        reviewers_per_pair=ui.reviewers_per_pair,
        session_lifetime_s=ui.session_lifetime_s,
        signin_attempts_per_minute=ui.signin_attempts_per_minute,
        secure_cookies=ui.cookies_secure,
        origin=ui.public_url,
        candidate=settings.rollout.candidate or only,
        shadow_candidates=tuple(c.name for c in settings.rollout.shadow_candidates),
        self_hosted=hosted,
    )


def attach_ui(root: web.Application, settings: Settings, rollout: RolloutApi) -> None:
    """Mount the UI on ``root``, the app that serves the admin API; it has its own
    connection pool to ``settings.database_url``, closed when the app stops. ``rollout``
    is the admin API's, so a change from the UI is the API's change."""
    db = Database(settings.database_url)

    async def lineup(since: datetime | None) -> Lineup | None:
        return await lineup_since(db, settings, since)

    context = UiContext(
        ui_config(settings),
        db,
        AdminTokens(settings.admin_token_names()),
        rollout,
        lineup=lineup,
    )
    root.add_subapp(UI_PREFIX, create_ui_app(context))
