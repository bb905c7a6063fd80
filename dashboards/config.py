"""What the web UI needs to know, built from the settings by ``understudy/ui_wiring.py``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from aiohttp import web

from admin.auth import AdminTokens
from admin.rollout_api import RolloutApi
from dashboards.pages.lineup_builds import LineupBuilds, LineupSource
from evaluation.cost import SelfHosted
from storage.database import Database
from storage.ui_memo import JudgeTallyMemo
from storage.web_sessions import WebSession


@dataclass(frozen=True, slots=True)
class UiConfig:
    reviewers_per_pair: int  # K: at most this many people decide one pair
    session_lifetime_s: float
    signin_attempts_per_minute: int
    secure_cookies: bool
    # The one Origin state-changing requests may come from, e.g. "https://ui.example.com";
    # None: the address the request was sent to.
    origin: str | None
    candidate: str | None  # whose pairs are reviewed; None: the one recorded most
    # Mirrored beside it (rollout.shadow_candidates): their pairs are reviewed too, so
    # people's preferences rank every candidate, not the judge's alone.
    shadow_candidates: tuple[str, ...] = ()
    # The GPU cost of each self-hosted candidate whose settings give one: the overview
    # prices such a candidate by it instead of a list price.
    self_hosted: Mapping[str, SelfHosted] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class UiContext:
    """What every page handler reads from ``request.app[UI]``."""

    config: UiConfig
    db: Database
    admin_tokens: AdminTokens
    rollout: RolloutApi | None = None  # the admin API's own: the rollout page changes through it
    # The judge's tally per overview range, kept until the candidate's judgments change.
    judge_tallies: JudgeTallyMemo = field(default_factory=JudgeTallyMemo)
    # Every candidate against the primary, for the candidates page; None: not offered.
    lineup: LineupSource | None = None
    lineup_builds: LineupBuilds = field(default_factory=LineupBuilds)  # kept a minute per range


UI = web.AppKey("ui", UiContext)

SESSION = web.RequestKey("ui_session", WebSession)  # set when a live session cookie came
PRE_SESSION_CSRF = web.RequestKey("ui_pre_session_csrf", str)  # a token minted on this request
SESSION_COOKIE = "understudy_session"
CSRF_COOKIE = "understudy_csrf"
CSRF_FIELD = "csrf"
