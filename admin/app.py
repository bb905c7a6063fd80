"""The admin API as an aiohttp sub-app under ``/admin/api/v1``: errors, tokens, lifecycle.

``understudy/wiring.py`` mounts it on the proxy's app, or serves it alone on its own
port so the port apps talk to does not expose it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

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


# Who uses the rollout's change code besides the API's own routes (the web UI).
ROLLOUT_API = web.AppKey("rollout_api", RolloutApi)
# What a change to the rollout may be refused with; ``refusal`` says how.
REFUSED = (BadInput, RolloutRefused, StaleVersion, DatabaseUnavailable)


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    message: str
    param: str | None
    code: str


def refusal(exc: BadInput | RolloutRefused | StaleVersion | DatabaseUnavailable) -> Refusal:
    """The status, message and field at fault of a refused change, wherever it was asked."""
    if isinstance(exc, BadInput):
        return Refusal(400, exc.message, exc.field, "invalid_admin_request")
    if isinstance(exc, RolloutRefused):
        return Refusal(400, str(exc), exc.field, "rollout_refused")
    if isinstance(exc, StaleVersion):
        return Refusal(409, str(exc), "if_version", "stale_version")
    return Refusal(503, str(exc), None, "flag_store_unavailable")


@web.middleware
async def refusals(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every refusal in OpenAI's error shape, with the field at fault as ``param``."""
    try:
        response = await handler(request)
    except REFUSED as exc:
        said = refusal(exc)
        if said.status == 503:
            return error_response(
                503,
                said.message,
                error_type="server_error",
                code=said.code,
                headers={"Retry-After": "1"},
            )
        return error_response(said.status, said.message, param=said.param, code=said.code)
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
    app[ROLLOUT_API] = api
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


__all__ = [
    "PREFIX",
    "REFUSED",
    "ROLLOUT_API",
    "AdminTokens",
    "Refusal",
    "create_admin_app",
    "refusal",
    "standalone_admin_app",
]
