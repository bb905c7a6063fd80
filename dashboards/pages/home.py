"""``/ui/``: reviewers go to review; admins get the overview.

The overview shows the rollout now, the current stage's verdict (loaded into the
page by htmx from ``/ui/overview/verdict``: the report may be rebuilding, and the
page should not wait for it), the plots of the chosen time range and its tallies,
cost and agreement, read from the rollups the writer keeps (``storage.rollups``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from admin.rollout_api import DatabaseUnavailable
from dashboards.access import admins, bad_range, see_other, session_of, signed_in
from dashboards.candidate import reviewed_candidate
from dashboards.config import UI
from dashboards.pages.overview_figures import first_seen, overview_figures
from dashboards.pages.overview_plots import plots, served_share
from dashboards.pages.overview_range import RANGES, TimeRange, page_window, time_range
from dashboards.pages.overview_verdict import verdict_view
from dashboards.render import render
from evaluation.cost import SelfHosted
from evaluation.wording import fmt
from storage.database import Database
from storage.ui_memo import JudgeTallyMemo

routes = web.RouteTableDef()


def duration_words(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    minutes = int(seconds // 60)
    if minutes < 1:
        return f"{seconds:.0f} s"
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min"


def _candidate_of(state: dict[str, Any] | None) -> str | None:
    """The candidate the rollout names (the chat route's first), if any."""
    if state is None:
        return None
    named = [s["candidate"] for s in state["routes"].values() if s["candidate"]]
    return named[0] if named else None


@routes.get("/")
@signed_in
async def home(request: web.Request) -> web.StreamResponse:
    if session_of(request).role == "reviewer":
        return see_other("/ui/review")
    return await overview(request)


async def overview(request: web.Request) -> web.StreamResponse:
    chosen = time_range(request.query.get("range"))
    if chosen is None:
        return bad_range(request, (r.key for r in RANGES))
    ui = request.app[UI]
    state = None
    if ui.rollout is not None:
        try:
            state = await ui.rollout.state()
        except DatabaseUnavailable:
            state = None
    candidate = _candidate_of(state) or await reviewed_candidate(request)
    hosted = ui.config.self_hosted.get(candidate) if candidate is not None else None

    now = datetime.now(UTC)
    context = await overview_context(
        ui.db, ui.judge_tallies, chosen, candidate, state, now, hosted=hosted
    )
    return render("overview.html", request, context)


def _outline(
    chosen: TimeRange, candidate: str | None, state: dict[str, Any] | None
) -> dict[str, Any]:
    """The page without the range's figures."""
    return {
        "ranges": RANGES,
        "chosen": chosen,
        "state": state,
        "candidate": candidate,
        "figures": None,
        "plots": None,
        "fmt": fmt,
        "duration_words": duration_words,
        "served": served_share,
    }


async def overview_context(
    db: Database,
    judge_tallies: JudgeTallyMemo,
    chosen: TimeRange,
    candidate: str | None,
    state: dict[str, Any] | None,
    now: datetime,
    *,
    hosted: SelfHosted | None = None,
) -> dict[str, Any]:
    """What ``overview.html`` shows: ``state`` as ``GET rollout`` gives it, if known;
    ``hosted``: the candidate's GPU cost, when it is self-hosted and its settings give one."""
    context = _outline(chosen, candidate, state)
    seen = await first_seen(db)
    if seen is not None and candidate is not None:
        window = page_window(chosen, candidate, now, seen)
        figures = await overview_figures(db, judge_tallies, window, hosted=hosted)
        context |= {"figures": figures, "plots": plots(figures, now)}
    return context


@routes.get("/overview/verdict")
@admins
async def verdict(request: web.Request) -> web.StreamResponse:
    """The current stage's verdict as a fragment of the overview."""
    rollout = request.app[UI].rollout
    view, problem = None, None
    if rollout is None:
        problem = "This server has no rollout to report on."
    else:
        try:
            view = verdict_view(await rollout.stage_report())
        except DatabaseUnavailable as exc:
            problem = str(exc)
    context = {"view": view, "problem": problem, "duration_words": duration_words}
    return render("overview_verdict.html", request, context)
