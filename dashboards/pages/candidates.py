"""Admins: every candidate against the primary on a time range (``/ui/candidates``).

The lineup ``understudy report`` adds when several candidates have shadow pairs: one
row per candidate from its own shadow report, and the Bradley–Terry ranking of all of
them with the primary, worded as the report words them (``evaluation.lineup``). The
ranges are the overview's. Building it runs every candidate's report, so it is built in
the background and kept a minute per range (``lineup_builds``); meanwhile the page says
it is counting and reloads.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from core import ConfigError
from dashboards.access import admins, bad_range
from dashboards.config import UI
from dashboards.pages.home import duration_words
from dashboards.pages.lineup_builds import BuiltLineup
from dashboards.pages.overview_range import RANGES, range_start, time_range
from dashboards.render import render
from evaluation.lineup import ranking_caption, ranking_rows, summary_rows

routes = web.RouteTableDef()

# Right-aligned columns of each table, by position in ``evaluation.lineup``'s rows.
SUMMARY_NUMBERS = frozenset({1})  # pairs
RANKING_NUMBERS = frozenset({0, 2, 4, 5})  # rank, rating, pairs, won/lost/tied


@routes.get("/candidates")
@admins
async def candidates_page(request: web.Request) -> web.StreamResponse:
    chosen = time_range(request.query.get("range"))
    if chosen is None:
        return bad_range(request, (r.key for r in RANGES))
    ui = request.app[UI]
    context: dict[str, Any] = {
        "ranges": RANGES,
        "chosen": chosen,
        "built": None,
        "counting": False,
        "problem": None,
        "duration_words": duration_words,
    }
    source = ui.lineup
    if source is None:
        context["problem"] = "This server does not build the candidates' lineup."
        return render("candidates.html", request, context)

    async def build() -> BuiltLineup:
        now = datetime.now(UTC)
        since = range_start(chosen, now)
        return BuiltLineup(since, now, await source(since))

    try:
        built = await ui.lineup_builds.within(chosen.key, build)
    except ConfigError as exc:  # the verdict rules in the settings cannot be used
        context["problem"] = f"The candidates' reports cannot be built: {exc}"
        return render("candidates.html", request, context)
    if built is None:
        context["counting"] = True
        return render("candidates.html", request, context)
    context["built"] = built
    lineup = built.lineup
    if lineup is not None:
        context |= {
            "summary": summary_rows(lineup),
            "summary_numbers": SUMMARY_NUMBERS,
            "ranking": ranking_rows(lineup.ranking),
            "ranking_numbers": RANKING_NUMBERS,
            "caption": ranking_caption(lineup.ranking),
        }
    return render("candidates.html", request, context)
