"""The one way to get a report: a database and a window in, verdict, metrics, findings and cost out.

The ``report`` command, the rollout controller and the web UI all call
``assess``, so they cannot disagree. Storage reads the columns
(``storage.report_queries``) and what goes with them (``storage.report_samples``);
the statistics are ``evaluation.report``'s. Shadow mode compares the two arms on
the same requests; split mode compares the users each arm served. evaluation
(scipy) is imported only when a report is built, so other commands start without it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from core import Route
from core.columns import Series
from storage.database import Database
from storage.report_queries import (
    LoadedShadow,
    LoadedSplit,
    load_shadow_columns,
    load_split_columns,
)
from storage.report_samples import (
    SeenNames,
    candidates_in,
    load_judgments,
    sample_pairs,
    split_primary_upstream,
)
from storage.review_codes import load_review_codes, merge_quality
from storage.window import ExchangeWindow
from understudy.settings import Settings

if TYPE_CHECKING:
    from evaluation.columns import ComparisonMode
    from evaluation.config import EvaluationConfig
    from evaluation.cost import SelfHosted
    from evaluation.report import CostInput, Report, ReportInput


class NoData(Exception):
    """Nothing to report on: the message says what was looked for."""


class Ambiguous(Exception):
    """The data allows more than one report: the message says which choice to make."""


@dataclass(frozen=True, slots=True)
class ReportRequest:
    """What to report on. Unset fields take the settings' or the data's only choice."""

    candidate: str | None = None  # default: the rollout's, the only configured, the only recorded
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive
    route: Route | None = None
    first_flag_version: int | None = None  # inclusive: a rollout stage's window
    last_flag_version: int | None = None  # inclusive
    mode: ComparisonMode | None = None  # default shadow when shadow pairs exist, else split
    stage: str = ""  # a label for the rollout stage, e.g. "25%"
    judge_model: str | None = None  # count only this LLM judge's judgments
    primary_model: str | None = None  # priced model of the primary (default: as recorded)
    candidate_model: str | None = None  # priced model of the candidate (default: as recorded)
    # A self-hosted candidate's GPU cost (default: the candidate's settings, self_hosted_for).
    self_hosted: SelfHosted | None = None

    def window(self, candidate: str | None) -> ExchangeWindow:
        return ExchangeWindow(
            candidate,
            self.since,
            self.until,
            self.route,
            self.first_flag_version,
            self.last_flag_version,
        )

    def describe_window(self) -> str:
        """The window in words, for messages."""
        parts = []
        if self.since is not None:
            parts.append(f"since {self.since.isoformat()}")
        if self.until is not None:
            parts.append(f"until {self.until.isoformat()}")
        if self.route is not None:
            parts.append(f"on {self.route.value}")
        first, last = self.first_flag_version, self.last_flag_version
        if first is not None and first == last:
            parts.append(f"at flag version {first}")
        else:
            if first is not None:
                parts.append(f"from flag version {first}")
            if last is not None:
                parts.append(f"up to flag version {last}")
        return " ".join(parts) or "in the whole database"


async def assess(
    db: Database,
    request: ReportRequest,
    settings: Settings,
    config: EvaluationConfig | None = None,
) -> Report:
    """The report on the request's window; raises NoData, Ambiguous, or ConfigError.

    ``config`` replaces the settings' verdict rules (a rollout stage gates on its own).
    """
    from evaluation.report import build_report

    data = await load_report_input(db, request, settings)
    rules = config if config is not None else settings.evaluation.config()
    # Statistics take CPU time: off the event loop, so a server keeps answering meanwhile.
    return await asyncio.to_thread(build_report, data, rules)


async def resolve_candidate(db: Database, request: ReportRequest, settings: Settings) -> str:
    """The request's candidate, else the rollout's, else the only configured, else the only
    one recorded in the window."""
    if request.candidate:
        return request.candidate
    if settings.rollout.candidate:
        return settings.rollout.candidate
    if len(settings.candidates) == 1:
        return settings.candidates[0].name
    seen = await candidates_in(db, request.window(None))
    if not seen:
        raise NoData(f"no candidate took part in any exchange {request.describe_window()}")
    if len(seen) > 1:
        raise Ambiguous(
            f"several candidates were recorded ({', '.join(seen)}): choose one with --candidate"
        )
    return seen[0]


async def _load_columns(
    db: Database, window: ExchangeWindow, wanted: ComparisonMode | None
) -> LoadedShadow | LoadedSplit:
    """The columns of the requested mode; by default shadow pairs, else split rows."""
    from evaluation.columns import ComparisonMode

    if wanted in (None, ComparisonMode.SHADOW):
        shadow = await load_shadow_columns(db, window)
        if len(shadow) or wanted is not None:
            return shadow
    return await load_split_columns(db, window)


def self_hosted_for(settings: Settings, candidate: str) -> SelfHosted | None:
    """The candidate's GPU cost as its settings give it (``gpu_usd_per_hour``,
    ``output_tokens_per_s``, ``gpus``); None when they give none or it is not configured."""
    from evaluation.cost import SelfHosted

    found = next((c for c in settings.candidates if c.name == candidate), None)
    if found is None or found.gpu_usd_per_hour is None or found.output_tokens_per_s is None:
        return None
    return SelfHosted(found.gpu_usd_per_hour, found.output_tokens_per_s, gpus=found.gpus)


def _cost(
    request: ReportRequest, settings: Settings, names: SeenNames, primary: str, candidate: str
) -> CostInput:
    from evaluation.report import CostInput

    primary_model = request.primary_model or names.primary_model or names.requested_model or primary
    candidate_model = request.candidate_model or names.candidate_model or candidate
    hosted = request.self_hosted or self_hosted_for(settings, candidate)
    return CostInput(primary_model, candidate_model, self_hosted=hosted)


async def load_report_input(
    db: Database, request: ReportRequest, settings: Settings
) -> ReportInput:
    """Everything ``build_report`` needs, read from the database; raises NoData or Ambiguous."""
    from evaluation.columns import ComparisonMode
    from evaluation.report import ReportInput, TextSample

    candidate = await resolve_candidate(db, request, settings)
    window = request.window(candidate)
    loaded = await _load_columns(db, window, request.mode)
    ids = loaded.exchange_ids
    if not ids:
        what = {
            None: "shadow pairs or split-mode exchanges",
            ComparisonMode.SHADOW: "shadow pairs",
            ComparisonMode.SPLIT: "split-mode exchanges",
        }[request.mode]
        raise NoData(f"no {what} of candidate {candidate!r} {request.describe_window()}")
    judged = await load_judgments(db, window, ids, judge_model=request.judge_model)
    reviewed = await load_review_codes(db, window, ids)
    quality = merge_quality(judged, reviewed, settings.ui.quality_source)
    judgments = Series.build(quality.codes, quality.rows)
    if isinstance(loaded, LoadedShadow):
        sample = await sample_pairs(db, window, ids, cap=settings.evaluation.text_sample_cap)
        t = sample.texts
        primary = sample.names.primary_upstream or settings.primary.name
        return ReportInput(
            primary=primary,
            candidate=candidate,
            mode=ComparisonMode.SHADOW,
            shadow=loaded.columns,
            judgments=judgments,
            texts=TextSample(t.rows, t.candidate, t.primary, t.noise) if t.rows.size else None,
            cost=_cost(request, settings, sample.names, primary, candidate),
            stage=request.stage,
        )
    primary = await split_primary_upstream(db, window) or settings.primary.name
    return ReportInput(
        primary=primary,
        candidate=candidate,
        mode=ComparisonMode.SPLIT,
        split=loaded.columns,
        judgments=judgments,
        stage=request.stage,
    )
