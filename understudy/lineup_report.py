"""Every candidate of a window against the primary: each one's own shadow report, side by
side, and their Bradley–Terry ranking.

``understudy report`` adds it to the report when more than one candidate has shadow
pairs in the window: the candidates the exchanges name (the rollout's, now and before)
and the configured shadow candidates. Each row is the candidate's own ``assess`` report, so a row and ``report --candidate
NAME`` cannot disagree; the ranking is ``evaluation.ranking``'s on
``storage.pair_outcomes``. The web UI's candidates page shows the same lineup on a time
range (``lineup_since``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING

from storage.database import Database
from storage.pair_outcomes import compared_candidates, pair_outcomes
from understudy.reporting import NoData, ReportRequest, assess
from understudy.settings import Settings

if TYPE_CHECKING:
    from evaluation.lineup import Lineup
    from evaluation.report import Report


async def compare_candidates(
    db: Database,
    request: ReportRequest,
    settings: Settings,
    known: Mapping[str, Report],
    *,
    at_least: int = 2,
) -> Lineup | None:
    """Each candidate with shadow pairs in the request's window, and the ranking; None when
    fewer than ``at_least`` candidates have any (the web UI asks for 1, to show a lone
    candidate's row). ``known`` holds reports already built on the request's window (a
    shadow-mode one is reused, not built again)."""
    from evaluation.columns import ComparisonMode
    from evaluation.lineup import lineup
    from evaluation.ranking import rank_candidates

    window = request.window(None)
    # The configured shadow candidates: finding them in the data would read every arm.
    listed = [c.name for c in settings.rollout.shadow_candidates]
    names = await compared_candidates(db, window, listed)
    if len(names) < at_least:
        return None
    reports: dict[str, Report] = {}
    for name in names:
        if (ready := known.get(name)) is not None and ready.mode is ComparisonMode.SHADOW:
            reports[name] = ready
            continue
        # The window and verdict rules are the request's; cost is priced per candidate.
        own = replace(
            request,
            candidate=name,
            mode=ComparisonMode.SHADOW,
            stage="",
            candidate_model=None,
            self_hosted=None,
        )
        try:
            reports[name] = await assess(db, own, settings)
        except NoData:
            continue  # no shadow pairs: it only served split traffic in this window
    if len(reports) < at_least:
        return None
    primary = settings.primary.name
    outcomes = await pair_outcomes(db, window, list(reports), prefer=settings.ui.quality_source)
    return lineup(primary, reports, rank_candidates(primary, outcomes))


async def lineup_since(db: Database, settings: Settings, since: datetime | None) -> Lineup | None:
    """The web UI's lineup: every candidate with shadow pairs since ``since`` (None: ever), as
    ``report --since`` would show them, a lone one included; None when no candidate has any."""
    return await compare_candidates(db, ReportRequest(since=since), settings, {}, at_least=1)
