"""``understudy report``: the verdict and figures for a candidate, from recorded exchanges.

A command line over ``understudy.reporting.assess``, which the rollout
controller and the web UI call too.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from core import ConfigError, Route
from understudy.commands.common import Subparsers, add_config_option, settings_from_args, when
from understudy.commands.db import fail, open_current, run_storage
from understudy.lineup_report import compare_candidates
from understudy.reporting import Ambiguous, NoData, ReportRequest, assess, resolve_candidate
from understudy.settings import Settings

if TYPE_CHECKING:
    from evaluation.lineup import Lineup
    from evaluation.report import Report

# evaluation (scipy) is imported only when a report runs: every other command
# starts without it.
FORMATS = ("text", "json", "markdown")
COMPARISON_MODES = ("shadow", "split")  # evaluation.columns.ComparisonMode's values


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "report", help="the verdict on a candidate: latency, errors, quality and cost"
    )
    parser.add_argument("--since", type=when, help="ISO 8601 time, or an age like 24h or 7d")
    parser.add_argument("--until", type=when, help="ISO 8601 time, or an age like 1h")
    parser.add_argument("--route", choices=[r.value for r in Route])
    parser.add_argument(
        "--flag-version",
        type=flag_versions,
        metavar="V[-W]",
        help="only exchanges routed under this flag version, or versions V to W (a stage)",
    )
    parser.add_argument(
        "--candidate",
        metavar="NAME",
        help="the candidate to judge (default: the rollout's, or the only one recorded)",
    )
    parser.add_argument(
        "--mode",
        choices=COMPARISON_MODES,
        help="shadow (paired) or split (by user); default shadow when shadow pairs exist",
    )
    parser.add_argument("--format", choices=FORMATS, default="text")
    parser.add_argument("--stage", default="", help="a label for the rollout stage, e.g. 25%%")
    parser.add_argument(
        "--judge-model", metavar="MODEL", help="count only this LLM judge's judgments"
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
    parser.add_argument(
        "--replay",
        type=whole,
        metavar="RUN",
        help="a replay run against the recorded primary answers (see `understudy replay list`)",
    )
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


def flag_versions(text: str) -> tuple[int, int]:
    first, _, last = text.partition("-")
    try:
        low, high = int(first), int(last or first)
    except ValueError:
        raise argparse.ArgumentTypeError("a flag version V, or a range V-W") from None
    if low < 1 or high < low:
        raise argparse.ArgumentTypeError("versions start at 1, and V-W needs V <= W")
    return low, high


def request_from_args(args: argparse.Namespace) -> ReportRequest:
    from evaluation.columns import ComparisonMode
    from evaluation.cost import SelfHosted

    hosted = None
    if args.gpu_usd_per_hour is not None and args.output_tokens_per_s is not None:
        hosted = SelfHosted(args.gpu_usd_per_hour, args.output_tokens_per_s, gpus=args.gpus)
    first, last = args.flag_version if args.flag_version else (None, None)
    return ReportRequest(
        candidate=args.candidate or None,
        since=args.since,
        until=args.until,
        route=Route(args.route) if args.route else None,
        first_flag_version=first,
        last_flag_version=last,
        mode=ComparisonMode(args.mode) if args.mode else None,
        stage=args.stage,
        judge_model=args.judge_model,
        primary_model=args.primary_model,
        candidate_model=args.candidate_model,
        self_hosted=hosted,
    )


def _main(args: argparse.Namespace) -> int:
    if (args.gpu_usd_per_hour is None) != (args.output_tokens_per_s is None):
        return fail("--gpu-usd-per-hour and --output-tokens-per-s go together")
    settings = settings_from_args(args)
    return run_storage(_report(args, settings))


async def _report(args: argparse.Namespace, settings: Settings) -> int:
    if args.replay is not None:
        return await _replay_report(args, settings)
    request = request_from_args(args)
    async with await open_current(settings.database_url) as db:
        try:
            report = await assess(db, request, settings)
        except NoData as exc:
            return fail(f"no exchanges match: {exc}")
        except (Ambiguous, ConfigError) as exc:
            return fail(str(exc))
        candidate = await resolve_candidate(db, request, settings)
        lineup = await compare_candidates(db, request, settings, {candidate: report})
    sys.stdout.write(render(report, args.format, lineup))
    return 0


async def _replay_report(args: argparse.Namespace, settings: Settings) -> int:
    from storage.replay import NoReplay
    from understudy.replay_report import build_replay_report, render_replay

    async with await open_current(settings.database_url) as db:
        try:
            report = await build_replay_report(db, args.replay, settings)
        except (NoReplay, ConfigError) as exc:
            return fail(str(exc))
    sys.stdout.write(render_replay(report, args.format))
    return 0


def render(report: Report, form: str, lineup: Lineup | None = None) -> str:
    """The report; with several candidates, every candidate's summary and the ranking after it."""
    from evaluation.lineup import lineup_json, render_lineup_markdown, render_lineup_text
    from evaluation.render import render_json, render_markdown, render_text

    if lineup is not None and form == "json":
        values = lineup_json(report, lineup)
        return json.dumps(values, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    renderers = {"text": render_text, "json": render_json, "markdown": render_markdown}
    out = str(renderers[form](report))
    if lineup is not None:
        out += render_lineup_markdown(lineup) if form == "markdown" else render_lineup_text(lineup)
    return out
