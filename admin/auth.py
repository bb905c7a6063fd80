"""Who is calling the admin API: a bearer token, compared in constant time, names them.

With no token configured the API is off and says so; it is never open.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web
from aiohttp.typedefs import Middleware

from proxy.errors import error_response

ACTOR = web.RequestKey("admin_actor", str)
TOKENS_SETTINGS = "UNDERSTUDY_ADMIN_TOKEN or UNDERSTUDY_ADMIN_TOKENS"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class AdminTokens:
    """The configured tokens by their holder's name (the audit log's actor)."""

    def __init__(self, by_name: Mapping[str, str]) -> None:
        self._tokens = [(name, _digest(token)) for name, token in by_name.items()]

    def __bool__(self) -> bool:
        return bool(self._tokens)

    def holder(self, given: str) -> str | None:
        """The name whose token is ``given``. Every token is compared, so the time taken
        says nothing about which one, or how much of one, matched."""
        presented = _digest(given)
        found = None
        for name, token in self._tokens:
            if hmac.compare_digest(presented, token):
                found = name
        return found


def _digest(token: str) -> bytes:
    # Equal-length digests: compare_digest would otherwise reveal a token's length.
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


def _bearer(header: str) -> str:
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def require_token(tokens: AdminTokens) -> Middleware:
    """Middleware: 403 while the API is off, 401 without a valid token, else the actor is set."""

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not tokens:
            return error_response(
                403,
                f"The admin API is off: set {TOKENS_SETTINGS} on the server to turn it on.",
                error_type="permission_error",
                code="admin_api_off",
            )
        actor = tokens.holder(_bearer(request.headers.get("Authorization", "")))
        if actor is None:
            return error_response(
                401,
                "The admin API needs 'Authorization: Bearer <admin token>' with a configured "
                "admin token.",
                error_type="authentication_error",
                code="invalid_admin_token",
                headers={"WWW-Authenticate": 'Bearer realm="understudy-admin"'},
            )
        request[ACTOR] = actor
        return await handler(request)

    return check
