"""The web UI as an aiohttp sub-app: templates, static files, middlewares and pages.

``understudy/ui_wiring.py`` mounts it at ``/ui`` wherever the admin API is served.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from importlib import import_module
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from dashboards.access import access_control, database_outage
from dashboards.config import UI, UiContext
from dashboards.markdown import safe_markdown
from dashboards.ratelimit import LIMITER, SignInLimiter
from dashboards.security import csrf_protection, security_headers

PREFIX = "/ui"
STATIC_DIR = Path(__file__).resolve().parent / "static"
TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"

# One module per page or group of pages, each with a ``routes`` table.
PAGE_MODULES = (
    "dashboards.pages.signin",
    "dashboards.pages.home",
    "dashboards.pages.review",
    "dashboards.pages.reviewers",
    "dashboards.pages.exchanges",
    "dashboards.pages.candidates",
    "dashboards.pages.rollout",
)


def create_ui_app(context: UiContext) -> web.Application:
    """The sub-app; the context's database is disposed when the app stops."""
    app = web.Application(
        middlewares=[security_headers, database_outage, access_control, csrf_protection]
    )
    app[UI] = context
    app[LIMITER] = SignInLimiter(context.config.signin_attempts_per_minute)
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,  # every value a template prints is escaped unless marked safe
        undefined=jinja2.StrictUndefined,
        default_helpers=False,
    )
    env.filters["markdown"] = safe_markdown
    app.router.add_static("/static/", STATIC_DIR, name="static", append_version=True)
    for name in PAGE_MODULES:
        app.router.add_routes(import_module(name).routes)

    async def lifecycle(_app: web.Application) -> AsyncIterator[None]:
        yield
        await context.lineup_builds.close()
        await context.db.dispose()

    app.cleanup_ctx.append(lifecycle)
    return app
