"""The admin API and the web UI, built from Settings: mounted on the proxy, or on a port of
their own."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from admin.app import PREFIX as ADMIN_PREFIX
from admin.app import AdminTokens, create_admin_app, standalone_admin_app
from rollout.live import LiveFlags
from rollout.store import RolloutStore
from storage.database import Database
from understudy.plan_settings import stage_plan
from understudy.settings import Settings
from understudy.ui_wiring import attach_ui

__all__ = ["ADMIN_APP", "ADMIN_PREFIX", "attach_admin"]

# Set on the proxy's app when the admin API has a port of its own: `serve` listens there too.
ADMIN_APP = web.AppKey("admin_app", web.Application)


def attach_admin(
    app: web.Application,
    settings: Settings,
    flags: LiveFlags,
    store_for: Callable[[Database], RolloutStore] | None,
) -> None:
    """Mount the admin API on ``app``, or keep it aside for its own listener.

    ``store_for`` None: no flag store (the settings are the rollout), changes are refused.
    Without a token the API is mounted all the same, and answers that it is off.
    """
    db = Database(settings.database_url) if store_for is not None else None
    store = store_for(db) if store_for is not None and db is not None else None
    tokens = AdminTokens(settings.admin_token_names())
    admin = create_admin_app(tokens, flags, store, db, stage_plan(settings.rollout.plan))
    if settings.admin_port is None:
        app.add_subapp(ADMIN_PREFIX, admin)
        attach_ui(app, settings)
    else:
        app[ADMIN_APP] = standalone_admin_app(admin)
        attach_ui(app[ADMIN_APP], settings)
