"""``/ui/``: each role's first page (admins: reviewers, until the overview takes this place)."""

from __future__ import annotations

from aiohttp import web

from dashboards.access import see_other, session_of, signed_in

routes = web.RouteTableDef()


@routes.get("/")
@signed_in
async def home(request: web.Request) -> web.StreamResponse:
    role = session_of(request).role
    return see_other("/ui/review" if role == "reviewer" else "/ui/reviewers")
