"""Headers every page gets, and the CSRF and Origin checks every state-changing request passes.

A POST must come from the UI's own Origin and carry the CSRF token: the session's, or
before sign-in the random token of the ``understudy_csrf`` cookie (double submit). Either
failing is a 403 before any handler runs.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from aiohttp import web

from dashboards.access import refuse
from dashboards.accounts import new_token
from dashboards.config import CSRF_COOKIE, CSRF_FIELD, PRE_SESSION_CSRF, SESSION, UI

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CSRF_HEADER = "X-CSRF-Token"
COOKIE_PATH = "/ui"

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ]
)
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
        _add_headers(response)
        raise
    _add_headers(response)
    return response


def _add_headers(response: web.StreamResponse) -> None:
    headers = response.headers
    headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    headers["X-Content-Type-Options"] = "nosniff"
    # Not "no-referrer": with it browsers send "Origin: null" on form posts. Other sites
    # still get no Referer, so an invite link never leaves the UI.
    headers["Referrer-Policy"] = "same-origin"
    headers["X-Frame-Options"] = "DENY"
    headers.setdefault("Cache-Control", "no-store")


def _expected_origin(request: web.Request) -> str:
    configured = request.app[UI].config.origin
    return configured if configured is not None else f"{request.scheme}://{request.host}"


async def _presented_token(request: web.Request) -> str:
    header = request.headers.get(CSRF_HEADER)
    if header is not None:
        return header
    if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        value = (await request.post()).get(CSRF_FIELD)
        return value if isinstance(value, str) else ""
    return ""


def _same(a: str, b: str) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(a.encode(), b.encode())


@web.middleware
async def csrf_protection(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Origin and token on every request that is not a GET, HEAD or OPTIONS."""
    if request.method in _SAFE_METHODS:
        if request.get(SESSION) is not None or CSRF_COOKIE in request.cookies:
            return await handler(request)
        # A visitor before sign-in: the token their forms will carry, also in a cookie.
        request[PRE_SESSION_CSRF] = token = new_token()
        response = await handler(request)
        set_cookie(request, response, CSRF_COOKIE, token, max_age=None)
        return response
    if request.headers.get("Origin") != _expected_origin(request):
        return refuse(request, 403, "This form was sent from another site.", "bad_origin")
    session = request.get(SESSION)
    expected = session.csrf_token if session is not None else request.cookies.get(CSRF_COOKIE, "")
    if not _same(await _presented_token(request), expected):
        return refuse(
            request, 403, "This form has expired: reload the page and try again.", "bad_csrf"
        )
    return await handler(request)


def set_cookie(
    request: web.Request,
    response: web.StreamResponse,
    name: str,
    value: str,
    *,
    max_age: int | None,
) -> None:
    """HttpOnly and SameSite=Strict always; Secure when configured or over TLS."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=COOKIE_PATH,
        httponly=True,
        samesite="Strict",
        secure=request.app[UI].config.secure_cookies or request.secure,
    )


def clear_cookie(response: web.StreamResponse, name: str) -> None:
    response.del_cookie(name, path=COOKIE_PATH)
