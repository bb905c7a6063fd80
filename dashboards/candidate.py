"""Whose pairs people review: the configured candidate, else the one recorded most."""

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
