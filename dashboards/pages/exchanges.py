"""Admins: the exchange browser (``/ui/exchanges``) and one exchange in full.

Admins only: the pages name the arms, their models and timings, which would un-blind
a reviewer. Nothing here reads headers: stored requests hold the body, redacted.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from aiohttp import web

from dashboards.access import admins, refuse
from dashboards.config import UI
from dashboards.exchange_filters import (
    ERROR_KINDS,
    FALLBACK_CHOICES,
    ROUTES,
    FilterError,
    page_link,
    parse_query,
)
from dashboards.exchange_view import (
    BAR_WIDTH,
    arm_views,
    metric_value,
    milliseconds,
    pair_view,
    shadow_candidates,
    timing_chart,
)
from dashboards.pages.review import conversation
from dashboards.render import render
from evaluation.metrics.registry import DEFAULT_METRICS
from storage.ui_browser import browse, exchange_detail

routes = web.RouteTableDef()

FORM_CHOICES = {"routes": ROUTES, "error_kinds": ERROR_KINDS, "fallbacks": tuple(FALLBACK_CHOICES)}


@routes.get("/exchanges")
@admins
async def exchanges_page(request: web.Request) -> web.StreamResponse:
    context: dict[str, Any] = FORM_CHOICES | {"ms": milliseconds}
    try:
        query = parse_query(request.query)
    except FilterError as exc:
        values = {k: v for k, v in request.query.items() if k != "after"}
        context |= {"values": values, "problem": str(exc), "page": None}
        return render("exchanges.html", request, context, status=400)
    page = await browse(request.app[UI].db, query.filter, after=query.after)
    context |= {
        "values": query.values,
        "problem": None,
        "page": page,
        "first_link": page_link(query.values) if query.after is not None else None,
        "next_link": page_link(query.values, page.next_cursor) if page.next_cursor else None,
    }
    return render("exchanges.html", request, context)


def _stored_request(body: Any) -> str | None:
    """The request as stored (redacted on the way in), for the parameters beside the turns."""
    return json.dumps(body, indent=2, sort_keys=True, ensure_ascii=False) if body else None


@routes.get("/exchanges/{exchange_id}")
@admins
async def exchange_page(request: web.Request) -> web.StreamResponse:
    try:
        exchange_id = uuid.UUID(request.match_info["exchange_id"])
    except ValueError:
        return refuse(request, 404, "No exchange has this id.", "not_found")
    detail = await exchange_detail(request.app[UI].db, exchange_id)
    if detail is None:
        return refuse(request, 404, "No exchange has this id.", "not_found")
    others = [
        await exchange_detail(request.app[UI].db, exchange_id, candidate=name)
        for name in shadow_candidates(detail)
    ]
    details = [detail, *(d for d in others if d is not None)]
    arms = arm_views(details)
    pairs = [pair_view(arms, d, DEFAULT_METRICS) for d in details]
    context = {
        "exchange": detail.exchange,
        "arms": arms,
        "pairs": [p for p in pairs if p is not None],
        "chart": timing_chart(arms),
        "bar_width": BAR_WIDTH,
        "turns": conversation(detail.exchange.request or None),
        "stored_request": _stored_request(detail.exchange.request),
        "ms": milliseconds,
        "metric_value": metric_value,
    }
    return render("exchange.html", request, context)
