"""Signing in (admin token or reviewer password), accepting an invite, signing out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from dashboards.access import public, see_other, signed_in
from dashboards.accounts import (
    hash_password,
    needs_rehash,
    new_token,
    password_matches,
    password_problem,
    token_hash,
)
from dashboards.config import SESSION, SESSION_COOKIE, UI
from dashboards.ratelimit import LIMITER
from dashboards.render import render
from dashboards.security import clear_cookie, set_cookie
from storage.reviewers import (
    accept_invite,
    invited_name,
    password_of,
    rehash_password,
)
from storage.web_sessions import WebSession, create_session, end_session

routes = web.RouteTableDef()

MAX_FIELD_CHARS = 1024


def _landing(next_path: str | None, role: str) -> str:
    """Where to go after sign-in: the page asked for, if it is one of ours."""
    if next_path and next_path.startswith("/ui/") and not next_path.startswith("/ui//"):
        return next_path
    return "/ui/review" if role == "reviewer" else "/ui/"


def _field(form: Any, name: str) -> str:
    value = form.get(name, "")
    return value[:MAX_FIELD_CHARS] if isinstance(value, str) else ""


def _too_many(request: web.Request) -> web.StreamResponse | None:
    wait = request.app[LIMITER].attempt(request.remote or "unknown")
    if wait is None:
        return None
    response = render(
        "refused.html",
        request,
        {"status": 429, "message": "Too many sign-in attempts: wait a minute and try again."},
        status=429,
    )
    response.headers["Retry-After"] = str(int(wait))
    return response


async def _start_session(
    request: web.Request, role: str, name: str, reviewer_id: int | None
) -> web.Response:
    """A new session (a new token each time: nothing set before sign-in carries over)."""
    ui = request.app[UI]
    now = datetime.now(UTC)
    lifetime = ui.config.session_lifetime_s
    token = new_token()
    session = WebSession(
        token_hash(token),
        role,
        name,
        reviewer_id,
        new_token(),
        now + timedelta(seconds=lifetime),
    )
    await create_session(ui.db, session, now)
    form = await request.post()
    response = see_other(_landing(_field(form, "next") or None, role))
    set_cookie(request, response, SESSION_COOKIE, token, max_age=int(lifetime))
    return response


def _signin_page(
    request: web.Request, *, error: str | None = None, status: int = 200, next_path: str = ""
) -> web.Response:
    context = {
        "error": error,
        "next": next_path,
        "admin_signin": bool(request.app[UI].admin_tokens),
    }
    return render("signin.html", request, context, status=status)


@routes.get("/signin")
@public
async def signin_form(request: web.Request) -> web.StreamResponse:
    if request.get(SESSION) is not None:
        return see_other("/ui/")
    return _signin_page(request, next_path=request.query.get("next", "")[:MAX_FIELD_CHARS])


@routes.post("/signin/admin")
@public
async def signin_admin(request: web.Request) -> web.StreamResponse:
    if (refused := _too_many(request)) is not None:
        return refused
    form = await request.post()
    holder = request.app[UI].admin_tokens.holder(_field(form, "token"))
    if holder is None:
        return _signin_page(
            request, error="That is not an admin token.", status=401, next_path=_field(form, "next")
        )
    return await _start_session(request, "admin", holder, None)


@routes.post("/signin/reviewer")
@public
async def signin_reviewer(request: web.Request) -> web.StreamResponse:
    if (refused := _too_many(request)) is not None:
        return refused
    form = await request.post()
    db = request.app[UI].db
    found = await password_of(db, _field(form, "name"))
    password = _field(form, "password")
    if not await password_matches(found[1] if found else None, password) or found is None:
        return _signin_page(
            request,
            error="Wrong name or password.",
            status=401,
            next_path=_field(form, "next"),
        )
    reviewer_id, stored = found
    if needs_rehash(stored):
        await rehash_password(db, reviewer_id, await hash_password(password))
    return await _start_session(request, "reviewer", _field(form, "name"), reviewer_id)


@routes.get("/invite/{token}")
@public
async def invite_form(request: web.Request) -> web.StreamResponse:
    name = await invited_name(
        request.app[UI].db, token_hash(request.match_info["token"]), datetime.now(UTC)
    )
    if name is None:
        return _invite_gone(request)
    return render("invite.html", request, {"name": name, "error": None})


def _invite_gone(request: web.Request) -> web.Response:
    message = "This invite link was used already or has expired: ask for a new one."
    return render("refused.html", request, {"status": 404, "message": message}, status=404)


@routes.post("/invite/{token}")
@public
async def accept(request: web.Request) -> web.StreamResponse:
    if (refused := _too_many(request)) is not None:
        return refused
    db = request.app[UI].db
    invite = token_hash(request.match_info["token"])
    now = datetime.now(UTC)
    name = await invited_name(db, invite, now)
    if name is None:
        return _invite_gone(request)
    form = await request.post()
    password = str(form.get("password", ""))
    problem = password_problem(password)
    if problem is None and password != form.get("confirm"):
        problem = "The two passwords differ."
    if problem is not None:
        return render("invite.html", request, {"name": name, "error": problem}, status=400)
    reviewer_id = await accept_invite(db, invite, await hash_password(password), now)
    if reviewer_id is None:
        return _invite_gone(request)
    return await _start_session(request, "reviewer", name, reviewer_id)


@routes.post("/signout")
@signed_in
async def signout(request: web.Request) -> web.StreamResponse:
    await end_session(request.app[UI].db, request[SESSION].token_hash)
    response = see_other("/ui/signin")
    clear_cookie(response, SESSION_COOKIE)
    return response
