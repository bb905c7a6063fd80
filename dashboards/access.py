"""Who may open what: the session behind a request, and one access mark per handler.

Every handler carries exactly one of ``public``, ``signed_in``, ``admins`` or
``reviewers``; the middleware refuses any handler without one, so a page added without
thought is closed, not open. Without a session, pages redirect to sign-in and JSON
under ``/ui/api/`` answers 401; with the wrong role, 403.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from enum import StrEnum
from typing import TypeVar
from urllib.parse import quote

import structlog
from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from dashboards.accounts import token_hash
from dashboards.config import SESSION, SESSION_COOKIE, UI
from dashboards.render import render
from proxy.errors import error_response
from storage.web_sessions import WebSession, find_session

log = structlog.get_logger("understudy.ui")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
H = TypeVar("H", bound=Handler)

API_PREFIX = "/ui/api/"


class Access(StrEnum):
    PUBLIC = "public"
    SIGNED_IN = "signed_in"
    ADMINS = "admin"
    REVIEWERS = "reviewer"


_MARK = "__ui_access__"


def _marked(access: Access) -> Callable[[H], H]:
    def mark(handler: H) -> H:
        setattr(handler, _MARK, access)
        return handler

    return mark


public = _marked(Access.PUBLIC)
signed_in = _marked(Access.SIGNED_IN)
admins = _marked(Access.ADMINS)
reviewers = _marked(Access.REVIEWERS)


def see_other(location: str) -> web.Response:
    """A redirect after a form or to sign-in (returned: raised ones skip the middlewares)."""
    return web.Response(status=303, headers={"Location": location})


def session_of(request: web.Request) -> WebSession:
    """The session of a handler marked other than ``public``."""
    return request[SESSION]


def reviewer_id(request: web.Request) -> int:
    """The reviewer of a handler marked ``reviewers``."""
    found = request[SESSION].reviewer_id
    if found is None:  # a reviewer's session always names them; refuse rather than guess
        raise web.HTTPForbidden()
    return found


def refuse(request: web.Request, status: int, message: str, code: str) -> web.StreamResponse:
    """A refusal: OpenAI's error JSON under /ui/api/, else a page saying why."""
    if request.path.startswith(API_PREFIX):
        kind = "authentication_error" if status == 401 else "permission_error"
        return error_response(status, message, error_type=kind, code=code)
    return render("refused.html", request, {"status": status, "message": message}, status=status)


def _required(request: web.Request) -> Access:
    info = request.match_info
    if isinstance(info.route.resource, web.StaticResource):
        return Access.PUBLIC
    found = getattr(info.handler, _MARK, None)
    return found if isinstance(found, Access) else Access.ADMINS


@web.middleware
async def access_control(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Load the session from its cookie, then let the request through or refuse it."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        found = await find_session(request.app[UI].db, token_hash(cookie), datetime.now(UTC))
        if found is not None:
            request[SESSION] = found
    required = _required(request)
    if required is Access.PUBLIC:
        return await handler(request)
    session = request.get(SESSION)
    if session is None:
        if request.path.startswith(API_PREFIX) or request.method != "GET":
            return refuse(request, 401, "Sign in first.", "not_signed_in")
        return see_other(f"/ui/signin?next={quote(request.path_qs, safe='')}")
    if required is not Access.SIGNED_IN and session.role != required.value:
        return refuse(request, 403, "Your account may not open this page.", "forbidden")
    return await handler(request)


@web.middleware
async def database_outage(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A database that cannot answer is a 503 saying so, never a 500."""
    try:
        return await handler(request)
    except (SQLAlchemyError, OSError) as exc:
        # The route's pattern, not the path: an invite link's path holds its token.
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "?"
        log.warning("ui_database_unavailable", route=route, error=type(exc).__name__)
        response = refuse(
            request,
            503,
            "The database cannot be reached or is not set up: try again shortly.",
            "database_unavailable",
        )
        response.headers["Retry-After"] = "5"
        return response


def bad_range(request: web.Request, known: Iterable[str]) -> web.StreamResponse:
    """The 400 page for a ``range`` the page does not offer."""
    choices = ", ".join(known)
    return refuse(request, 400, f"Unknown time range: choose one of {choices}.", "bad_range")
