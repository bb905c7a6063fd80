"""Admins: the reviewers, how much each has reviewed, and how far people and the judge agree."""

from __future__ import annotations

from aiohttp import web

from dashboards.access import admins
from dashboards.agreement import agreement_figures
from dashboards.candidate import reviewed_candidate
from dashboards.config import UI
from dashboards.render import render
from storage.reviewers import list_reviewers
from storage.window import ExchangeWindow

routes = web.RouteTableDef()


@routes.get("/reviewers")
@admins
async def reviewers_page(request: web.Request) -> web.StreamResponse:
    ui = request.app[UI]
    candidate = await reviewed_candidate(request)
    figures = None
    if candidate is not None:
        figures = await agreement_figures(ui.db, ExchangeWindow(candidate))
    context = {
        "reviewers": await list_reviewers(ui.db),
        "candidate": candidate,
        "figures": figures,
        "per_pair": ui.config.reviewers_per_pair,
    }
    return render("reviewers.html", request, context)
