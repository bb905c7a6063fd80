"""The admin API as an aiohttp sub-app under ``/admin/api/v1``: errors, tokens, lifecycle.

``understudy/wiring.py`` mounts it on the proxy's app, or serves it alone on its own
port so the port apps talk to does not expose it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import structlog
from aiohttp import web

from admin.auth import ACTOR, AdminTokens, require_token
from admin.payloads import BadInput
from admin.rollout_api import DatabaseUnavailable, RolloutApi
from admin.stage_report import StageReportSource
from proxy.app import openai_error_shape
from proxy.errors import error_response
from rollout.changes import RolloutRefused
from rollout.live import LiveFlags
from rollout.plan import StagePlan
from rollout.store import RolloutStore
from storage.database import Database
from storage.flags import StaleVersion

log = structlog.get_logger("understudy.admin")

PREFIX = "/admin/api/v1"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def refusals(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every refusal in OpenAI's error shape, with the field at fault as ``param``."""
    try:
        response = await handler(request)
    except BadInput as exc:
        return error_response(400, exc.message, param=exc.field, code="invalid_admin_request")
    except RolloutRefused as exc:
        return error_response(400, str(exc), param=exc.field, code="rollout_refused")
    except StaleVersion as exc:
        return error_response(409, str(exc), param="if_version", code="stale_version")
    except DatabaseUnavailable as exc:
        return error_response(
            503,
            str(exc),
            error_type="server_error",
            code="flag_store_unavailable",
            headers={"Retry-After": "1"},
        )
    if request.method == "POST" and response.status < 300:
        log.info("admin_change", actor=request[ACTOR], path=request.path, status=response.status)
    return response


def create_admin_app(
    tokens: AdminTokens,
    flags: LiveFlags,
    store: RolloutStore | None,
    db: Database | None,
    plan: StagePlan,
    reports: StageReportSource | None = None,
) -> web.Application:
    """The admin sub-app; ``db`` is the flag store's, disposed when the app stops.

    ``store`` and ``db`` None: the rollout comes from the settings, and changing it is refused.
    ``reports`` gives the current stage's report.
    """
    app = web.Application(middlewares=[require_token(tokens), refusals])
    api = RolloutApi(store, db, flags, plan, reports)
    app.router.add_routes(api.routes())

    async def lifecycle(_app: web.Application) -> AsyncIterator[None]:
        yield
        await api.close()
        if db is not None:
            await db.dispose()

    app.cleanup_ctx.append(lifecycle)
    return app


def standalone_admin_app(admin: web.Application) -> web.Application:
    """A root app serving only the admin API, for a listener of its own."""
    root = web.Application(middlewares=[openai_error_shape])
    root.add_subapp(PREFIX, admin)
    return root


__all__ = ["PREFIX", "AdminTokens", "create_admin_app", "standalone_admin_app"]
