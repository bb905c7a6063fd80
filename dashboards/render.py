"""Rendering a page: every template gets who is signed in and the form token."""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web
from markupsafe import Markup, escape

from dashboards.config import CSRF_COOKIE, CSRF_FIELD, PRE_SESSION_CSRF, SESSION
from storage.web_sessions import WebSession


def form_token(request: web.Request) -> str:
    """The CSRF token a page's forms carry: the session's, or before sign-in the cookie's."""
    session: WebSession | None = request.get(SESSION)
    if session is not None:
        return session.csrf_token
    fresh = request.get(PRE_SESSION_CSRF)
    return fresh if fresh is not None else request.cookies.get(CSRF_COOKIE, "")


def render(
    template: str, request: web.Request, context: dict[str, Any], *, status: int = 200
) -> web.Response:
    token = form_token(request)

    def csrf_field() -> Markup:
        return Markup('<input type="hidden" name="{}" value="{}">').format(
            CSRF_FIELD, escape(token)
        )

    page = {"session": request.get(SESSION), "csrf_token": token, "csrf_field": csrf_field}
    return aiohttp_jinja2.render_template(template, request, page | context, status=status)
