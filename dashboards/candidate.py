"""Whose pairs people review: the configured candidate, else the one recorded most, and the
shadow candidates mirrored beside it."""

from __future__ import annotations

from aiohttp import web

from dashboards.config import UI
from storage.report_samples import candidates_in
from storage.window import ExchangeWindow


async def reviewed_candidate(request: web.Request) -> str | None:
    ui = request.app[UI]
    if ui.config.candidate is not None:
        return ui.config.candidate
    seen = await candidates_in(ui.db, ExchangeWindow())
    return seen[0] if seen else None


async def reviewed_candidates(request: web.Request) -> list[str]:
    """Every candidate whose pairs the review queue offers, the rollout's first."""
    main = await reviewed_candidate(request)
    shadows = request.app[UI].config.shadow_candidates
    return list(dict.fromkeys([*([main] if main else []), *shadows]))
