"""``understudy report``: the verdict and figures for a candidate, from recorded exchanges.

Columns come straight from SQL (``storage.report_queries``); the statistics
are ``evaluation.report``'s. Shadow mode compares the two arms on the same
requests; split mode compares the users each arm served.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from core import ConfigError, Route
from storage.database import Database
from storage.report_queries import (
    ArmArrays,
    ReportWindow,
    SeenNames,
    ShadowArrays,
    SplitArrays,
    candidates_in,
    load_judgements,
    load_shadow_columns,
    load_split_columns,
    sample_pairs,
    split_primary_upstream,
)
from understudy.commands.common import Subparsers, add_config_option, settings_from_args, when
from understudy.commands.db import fail, open_current, run_storage
from understudy.settings import Settings

if TYPE_CHECKING:
    from evaluation.columns import ArmColumns
    from evaluation.report import CostInput, Report, ReportInput

# evaluation (scipy) is imported only when a report runs: every other command
# starts without it.
FORMATS = ("text", "json", "markdown")
MODES = ("shadow", "split")


class NoData(Exception):
    """Nothing to report on: the message says what was looked for."""


class Ambiguous(Exception):
    """The data allows more than one report: the message says which option to add."""


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "report", help="the verdict on a candidate: latency, errors, quality and cost"
    )
    parser.add_argument("--since", type=when, help="ISO 8601 time, or an age like 24h or 7d")
    parser.add_argument("--until", type=when, help="ISO 8601 time, or an age like 1h")
    parser.add_argument("--route", choices=[r.value for r in Route])
    parser.add_argument(
        "--candidate",
        metavar="NAME",
        help="the candidate to judge (default: the rollout's, or the only one recorded)",
    )
    parser.add_argument(
        "--mode",
        choices=MODES,
        help="shadow (paired) or split (by user); default shadow when shadow pairs exist",
    )
    parser.add_argument("--format", choices=FORMATS, default="text")
    parser.add_argument("--stage", default="", help="a label for the rollout stage, e.g. 25%%")
    parser.add_argument(
        "--judge-model", metavar="MODEL", help="count only this LLM judge's judgements"
    )
    cost = parser.add_argument_group("cost")
    cost.add_argument("--primary-model", metavar="MODEL", help="priced model of the primary")
    cost.add_argument("--candidate-model", metavar="MODEL", help="priced model of the candidate")
    cost.add_argument(
        "--gpu-usd-per-hour",
        type=non_negative,
        metavar="USD",
        help="self-hosted candidate: GPU price per hour (with --output-tokens-per-s)",
    )
    cost.add_argument(
        "--output-tokens-per-s",
        type=positive,
        metavar="N",
        help="self-hosted candidate: output tokens per second at saturation",
    )
    cost.add_argument("--gpus", type=whole, default=1, metavar="N", help="GPUs per replica")
    add_config_option(parser)
    parser.set_defaults(func=_main)


def non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be at least 0")
    return value


def positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


def whole(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _main(args: argparse.Namespace) -> int:
    if (args.gpu_usd_per_hour is None) != (args.output_tokens_per_s is None):
        return fail("--gpu-usd-per-hour and --output-tokens-per-s go together")
    settings = settings_from_args(args)
    return run_storage(_report(args, settings))


async def _report(args: argparse.Namespace, settings: Settings) -> int:
    async with await open_current(settings.database_url) as db:
        try:
            data = await load_report_input(db, args, settings)
        except NoData as exc:
            return fail(f"no exchanges match: {exc}")
        except Ambiguous as exc:
            return fail(str(exc))
    from evaluation.report import build_report

    try:
        report = build_report(data, settings.evaluation.config())
    except ConfigError as exc:
        return fail(str(exc))
    sys.stdout.write(render(report, args.format))
    return 0


def render(report: Report, form: str) -> str:
    from evaluation.render import render_json, render_markdown, render_text

    renderers = {"text": render_text, "json": render_json, "markdown": render_markdown}
    return renderers[form](report)


# ---- assembling the report's input ------------------------------------------------------------


def _window_words(args: argparse.Namespace) -> str:
    parts = []
    if args.since is not None:
        parts.append(f"since {args.since.isoformat()}")
    if args.until is not None:
        parts.append(f"until {args.until.isoformat()}")
    if args.route is not None:
        parts.append(f"on {args.route}")
    return " ".join(parts) or "in the whole database"


async def _candidate(db: Database, args: argparse.Namespace, settings: Settings) -> str:
    """--candidate, else the rollout's, else the only configured one, else the only recorded."""
    if args.candidate:
        return str(args.candidate)
    if settings.rollout.candidate:
        return settings.rollout.candidate
    if len(settings.candidates) == 1:
        return settings.candidates[0].name
    route = Route(args.route) if args.route else None
    seen = await candidates_in(db, since=args.since, until=args.until, route=route)
    if not seen:
        raise NoData(f"no candidate took part in any exchange {_window_words(args)}")
    if len(seen) > 1:
        raise Ambiguous(
            f"several candidates were recorded ({', '.join(seen)}): choose one with --candidate"
        )
    return seen[0]


@dataclass(frozen=True, slots=True)
class _Loaded:
    shadow: ShadowArrays | None = None
    split: SplitArrays | None = None

    @property
    def exchange_ids(self) -> tuple[Any, ...]:
        found = self.shadow if self.shadow is not None else self.split
        return () if found is None else found.exchange_ids


async def _load_columns(db: Database, window: ReportWindow, wanted: str | None) -> _Loaded:
    """The columns of the requested mode; by default shadow pairs, else split rows."""
    if wanted in (None, "shadow"):
        shadow = await load_shadow_columns(db, window)
        if len(shadow) or wanted is not None:
            return _Loaded(shadow=shadow)
    return _Loaded(split=await load_split_columns(db, window))


def _arm(arrays: ArmArrays) -> ArmColumns:
    from evaluation.columns import ArmColumns

    return ArmColumns.build(
        arrays.latency_ms,
        arrays.ttft_ms,
        arrays.failed,
        prompt_tokens=arrays.prompt_tokens,
        cached_tokens=arrays.cached_tokens,
        completion_tokens=arrays.completion_tokens,
    )


def _cost(args: argparse.Namespace, names: SeenNames, primary: str, candidate: str) -> CostInput:
    from evaluation.cost import SelfHosted
    from evaluation.report import CostInput

    primary_model = args.primary_model or names.primary_model or names.requested_model or primary
    candidate_model = args.candidate_model or names.candidate_model or candidate
    hosted = None
    if args.gpu_usd_per_hour is not None and args.output_tokens_per_s is not None:
        hosted = SelfHosted(args.gpu_usd_per_hour, args.output_tokens_per_s, gpus=args.gpus)
    return CostInput(primary_model, candidate_model, self_hosted=hosted)


async def load_report_input(
    db: Database, args: argparse.Namespace, settings: Settings
) -> ReportInput:
    """Everything ``build_report`` needs, read from the database; raises NoData or Ambiguous."""
    from evaluation.columns import Mode, Series, ShadowColumns, SplitColumns
    from evaluation.report import ReportInput, TextSample

    candidate = await _candidate(db, args, settings)
    window = ReportWindow(
        candidate=candidate,
        since=args.since,
        until=args.until,
        route=Route(args.route) if args.route else None,
    )
    loaded = await _load_columns(db, window, args.mode)
    ids = loaded.exchange_ids
    if not ids:
        what = {
            None: "shadow pairs or split-mode exchanges",
            "shadow": "shadow pairs",
            "split": "split-mode exchanges",
        }[args.mode]
        raise NoData(f"no {what} of candidate {candidate!r} {_window_words(args)}")
    judged = await load_judgements(db, window, ids, judge_model=args.judge_model)
    judgments = Series.build(judged.codes, judged.rows)
    if loaded.shadow is not None:
        s = loaded.shadow
        sample = await sample_pairs(db, window, ids, cap=settings.evaluation.text_sample_cap)
        t = sample.texts
        primary = sample.names.primary_upstream or settings.primary.name
        return ReportInput(
            primary=primary,
            candidate=candidate,
            mode=Mode.SHADOW,
            shadow=ShadowColumns(_arm(s.primary), _arm(s.candidate), s.time_s),
            judgments=judgments,
            texts=TextSample(t.rows, t.candidate, t.primary, t.noise) if t.rows.size else None,
            cost=_cost(args, sample.names, primary, candidate),
            stage=args.stage,
        )
    assert loaded.split is not None
    p = loaded.split
    primary = await split_primary_upstream(db, window) or settings.primary.name
    return ReportInput(
        primary=primary,
        candidate=candidate,
        mode=Mode.SPLIT,
        split=SplitColumns(_arm(p.served), p.is_candidate, p.user.astype(np.int64), p.time_s),
        judgments=judgments,
        stage=args.stage,
    )
