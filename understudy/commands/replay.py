"""``understudy replay``: send stored requests to a candidate, and record what it answers.

A run's selection (time window, route, sample, limit) is fixed when the run is made,
so Ctrl-C and running the same command again sends the rest, never a new sample and
never one request twice. Only the candidate (or the ad-hoc ``--base-url`` target) is
ever called. ``understudy replay list`` shows the runs; ``understudy report --replay ID``
compares a run's answers with the primary's recorded ones.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import signal
import sys
from datetime import UTC, datetime
from typing import NamedTuple

from yarl import URL

from core import Route
from core.upstream_kind import UpstreamKind
from proxy.config import UpstreamConfig
from proxy.upstreams import build_upstream
from proxy.upstreams.port import Upstream
from storage.database import Database
from storage.replay import (
    FINISHED,
    RUNNING,
    STOPPED,
    ReplayRun,
    create_run,
    get_run,
    latest_run,
    list_runs,
    select_exchanges,
    set_status,
)
from storage.timespec import parse_when
from storage.window import ExchangeWindow
from understudy.commands.common import (
    EXIT_CONFIG,
    Subparsers,
    add_config_option,
    settings_from_args,
    strict_json,
)
from understudy.commands.db import open_current, run_storage
from understudy.commands.report import positive, whole
from understudy.logs import configure_logging
from understudy.progress import Progress
from understudy.replay_runner import ReplayPace, ReplayRunner
from understudy.settings import Settings

EXIT_INTERRUPTED = 130  # as a shell reports a process ended by SIGINT
DEFAULT_GRACE_S = 10.0


class When(NamedTuple):
    text: str  # as typed: the same command finds the same run, whenever it is run again
    at: datetime


def _when(text: str) -> When:
    try:
        return When(text, parse_when(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _seed(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be at least 0")
    return value


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "replay",
        help="re-send stored requests to a candidate and record its answers (`replay list`)",
    )
    parser.add_argument("action", nargs="?", choices=("list",), help="list: show the runs")
    parser.add_argument("--candidate", metavar="NAME", help="a configured candidate, or a label")
    adhoc = parser.add_argument_group("an ad-hoc target instead of a configured candidate")
    adhoc.add_argument("--base-url", metavar="URL", help="its API root, e.g. http://host:8000/v1")
    adhoc.add_argument(
        "--kind",
        choices=[k.value for k in UpstreamKind],
        default=UpstreamKind.OPENAI.value,
        help="its API (default openai)",
    )
    adhoc.add_argument(
        "--model-map", metavar="JSON", help='requested model -> its model, e.g. \'{"a": "b"}\''
    )
    adhoc.add_argument(
        "--api-key-env", metavar="NAME", help="environment variable holding its API key"
    )
    adhoc.add_argument(
        "--timeout", type=positive, default=60.0, metavar="S", help="per call (default 60)"
    )
    which = parser.add_argument_group("which stored requests")
    which.add_argument("--since", type=_when, help="ISO 8601 time, or an age like 24h or 7d")
    which.add_argument("--until", type=_when, help="ISO 8601 time, or an age (default: now)")
    which.add_argument("--route", choices=[r.value for r in Route])
    which.add_argument("--sample", type=whole, metavar="N", help="N chosen by a seeded hash")
    which.add_argument("--seed", type=_seed, default=0, help="the sample's seed (default 0)")
    which.add_argument("--limit", type=whole, metavar="N", help="at most N, oldest first")
    how = parser.add_argument_group("pace")
    how.add_argument("--concurrency", type=whole, default=4, help="calls at once (default 4)")
    how.add_argument("--rate", type=positive, metavar="R", help="call starts per second at most")
    how.add_argument(
        "--grace",
        type=positive,
        default=DEFAULT_GRACE_S,
        metavar="S",
        help=f"after Ctrl-C, how long calls in flight may finish (default {DEFAULT_GRACE_S:g})",
    )
    parser.add_argument("--new", action="store_true", help="a fresh run, even if one can resume")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="for list")
    add_config_option(parser)
    parser.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    if args.action == "list":
        return run_storage(_list(settings, args.format))
    try:
        target = _target(args, settings)
    except ValueError as exc:
        sys.stderr.write(f"understudy: {exc}\n")
        return EXIT_CONFIG
    return run_storage(_replay(args, settings, target))


# ---- the target ---------------------------------------------------------------------------------


class Target(NamedTuple):
    label: str  # the candidate's name, or the ad-hoc target's
    config: UpstreamConfig
    upstream: Upstream


def describe(config: UpstreamConfig) -> str:
    """The target in words, with no credential: the kind and the URL without user or query."""
    url = URL(config.base_url).with_user(None).with_password(None).with_query(None)
    return f"{config.kind} {url.with_fragment(None)}"


def _model_map(text: str | None) -> dict[str, str]:
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        raise ValueError(
            '--model-map must be a JSON object like {"gpt-4o-mini": "llama3"}'
        ) from None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValueError("--model-map must map model names to model names")
    return value


def _target(args: argparse.Namespace, settings: Settings) -> Target:
    """The configured candidate, or the ad-hoc target; raises ValueError with what to fix."""
    if args.base_url is None:
        if args.model_map or args.api_key_env:
            raise ValueError("--model-map and --api-key-env describe an ad-hoc --base-url target")
        if not args.candidate:
            raise ValueError("choose a configured --candidate NAME, or a target with --base-url")
        from understudy.wiring import upstream_set

        configured = upstream_set(settings).candidates
        if args.candidate not in configured:
            names = ", ".join(sorted(configured)) or "none configured"
            raise ValueError(f"no candidate named {args.candidate!r} ({names})")
        upstream = configured[args.candidate]
        return Target(args.candidate, upstream.config, upstream)
    if not args.base_url.startswith(("http://", "https://")):
        raise ValueError("--base-url must start with http:// or https://")
    key = None
    if args.api_key_env:
        key = os.environ.get(args.api_key_env) or None
        if key is None:
            raise ValueError(f"environment variable {args.api_key_env} is not set")
    base_url = args.base_url.rstrip("/")
    label = args.candidate or (URL(base_url).host or "ad-hoc")
    config = UpstreamConfig(
        name=label,
        base_url=base_url,
        kind=args.kind,
        api_key=key,
        model_map=_model_map(args.model_map),
        timeout_s=args.timeout,
        connect_timeout_s=min(args.timeout, 10.0),
        stream_idle_timeout_s=args.timeout,
        max_concurrency=args.concurrency,
    )
    return Target(label, config, build_upstream(config))


# ---- the run ------------------------------------------------------------------------------------


def _selection(args: argparse.Namespace, target: Target) -> dict[str, object]:
    """The options that choose what is replayed where, as typed: a run's identity."""
    return {
        "candidate": target.label,
        "target": describe(target.config),
        "model_map": dict(target.config.model_map),
        "since": args.since.text if args.since else None,
        "until": args.until.text if args.until else None,
        "route": args.route,
        "sample": args.sample,
        "seed": args.seed if args.sample else None,
        "limit": args.limit,
    }


async def _open_run(
    db: Database, args: argparse.Namespace, target: Target
) -> tuple[ReplayRun, bool] | None:
    """The run to resume, or a new one (with whether it is resumed); None when finished."""
    selection = _selection(args, target)
    key = hashlib.sha256(json.dumps(selection, sort_keys=True).encode()).hexdigest()
    run = None if args.new else await latest_run(db, key)
    if run is not None and run.status == FINISHED:
        sys.stdout.write(
            f"run {run.id} already finished: {run.done:,} of {run.selected:,} replayed "
            f"({run.errors:,} failed); --new starts a fresh run\n"
        )
        return None
    if run is not None:
        await set_status(db, run.id, RUNNING)
        return run, True
    # The window ends now unless told otherwise: traffic recorded later is not this run's.
    until = args.until.at if args.until else datetime.now(UTC)
    since = args.since.at if args.since else None
    route = Route(args.route) if args.route else None
    chosen = await select_exchanges(
        db,
        ExchangeWindow(since=since, until=until, route=route),
        sample=args.sample,
        seed=args.seed,
        limit=args.limit,
    )
    parameters = {
        **selection,
        "since_at": since.isoformat() if since else None,
        "until_at": until.isoformat(),
    }
    run_id = await create_run(
        db,
        candidate=target.label,
        target=describe(target.config),
        selection_key=key,
        parameters=parameters,
        selection=chosen,
    )
    created = await get_run(db, run_id)
    assert created is not None  # made in the transaction above
    return created, False


async def _replay(args: argparse.Namespace, settings: Settings, target: Target) -> int:
    # The proxy's wiring, for the log redactor: imported by a run only, so `list` starts fast.
    from understudy.upstream_keys import secret_redactor

    async with await open_current(settings.database_url) as db:
        # Logs go to stderr with the progress line; one debug line per replayed exchange.
        configure_logging(settings.log_level, settings.log_format, redact=secret_redactor(settings))
        opened = await _open_run(db, args, target)
        if opened is None:
            return 0
        run, resumed = opened
        if resumed:
            sys.stderr.write(f"resuming run {run.id}: {run.done:,} of {run.selected:,} done\n")
        else:
            sys.stderr.write(
                f"run {run.id}: {run.selected:,} requests to replay to {run.candidate} "
                f"({run.target}); {run.skipped_no_prompt:,} skipped, stored without prompts\n"
            )
        progress = Progress(f"run {run.id}", run.selected, run.done, sys.stderr)
        pace = ReplayPace(args.concurrency, args.rate, settings.limits.max_recorded_chars)
        await target.upstream.start()
        try:
            runner = ReplayRunner(
                db, run.id, target.upstream, settings.storage.privacy_policy(), pace, progress
            )
            interrupted = await _run_until_done_or_interrupted(runner, args.grace)
        finally:
            await target.upstream.close()
            progress.close()
        after = await get_run(db, run.id)
        assert after is not None
        complete = after.done == after.selected
        status = FINISHED if complete and not interrupted else STOPPED
        await set_status(db, run.id, status)
        runner.raise_failure()
    return _summary(after, runner, interrupted, complete)


async def _run_until_done_or_interrupted(runner: ReplayRunner, grace_s: float) -> bool:
    """Feed the runner until nothing is pending; on Ctrl-C stop feeding, give the calls in
    flight ``grace_s`` (a second Ctrl-C: none), then cancel the rest. True if interrupted."""
    loop = asyncio.get_running_loop()
    feeder = asyncio.create_task(runner.feed(), name="replay-feed")
    interrupts = 0
    cut_short = asyncio.Event()

    def on_interrupt() -> None:
        nonlocal interrupts
        interrupts += 1
        feeder.cancel()
        if interrupts == 1:
            sys.stderr.write(
                f"\nstopping: waiting up to {grace_s:g} s for {runner.in_flight} calls in "
                "flight (Ctrl-C again to cancel them)\n"
            )
        else:
            cut_short.set()

    loop.add_signal_handler(signal.SIGINT, on_interrupt)
    loop.add_signal_handler(signal.SIGTERM, on_interrupt)
    try:
        try:
            await feeder
        except asyncio.CancelledError:
            if interrupts == 0:
                raise
        if interrupts:
            waiting = asyncio.create_task(runner.drain(grace_s), name="replay-drain")
            cut = asyncio.create_task(cut_short.wait(), name="replay-cut")
            await asyncio.wait({waiting, cut}, return_when=asyncio.FIRST_COMPLETED)
            for task in (waiting, cut):
                task.cancel()
            await asyncio.gather(waiting, cut, return_exceptions=True)
        else:
            await runner.drain()
        await runner.cancel_in_flight()
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        loop.remove_signal_handler(signal.SIGTERM)
    return interrupts > 0


def _summary(run: ReplayRun, runner: ReplayRunner, interrupted: bool, complete: bool) -> int:
    tally = runner.tally
    sys.stdout.write(
        f"run {run.id}: {tally.stored:,} replayed now ({tally.failed:,} failed), "
        f"{run.done:,} of {run.selected:,} done in all\n"
    )
    if interrupted:
        sys.stderr.write(
            f"understudy: stopped run {run.id} with {run.selected - run.done:,} left: run the "
            "same command again to resume it\n"
        )
        return EXIT_INTERRUPTED
    if tally.unreached:
        sys.stderr.write(
            f"understudy: {tally.unreached:,} requests did not reach {run.candidate} (no "
            "connection, or its key refused): they stay pending; run the same command again "
            "to send them\n"
        )
        return 1
    return 0 if complete else 1


# ---- replay list --------------------------------------------------------------------------------


def run_json(run: ReplayRun) -> dict[str, object]:
    return {
        "id": run.id,
        "candidate": run.candidate,
        "target": run.target,
        "status": run.status,
        "selected": run.selected,
        "done": run.done,
        "failed": run.errors,
        "skipped_no_prompt": run.skipped_no_prompt,
        "created_at": run.created_at.isoformat(),
        "updated_at": run.updated_at.isoformat(),
        "parameters": dict(run.parameters),
    }


async def _list(settings: Settings, form: str) -> int:
    async with await open_current(settings.database_url) as db:
        runs = await list_runs(db)
    if form == "json":
        sys.stdout.write(strict_json([run_json(r) for r in runs]) + "\n")
        return 0
    if not runs:
        sys.stdout.write("no replay runs yet\n")
        return 0
    header = ("run", "candidate", "status", "done", "failed", "no prompt", "started (UTC)")
    rows = [
        (
            str(r.id),
            r.candidate,
            r.status,
            f"{r.done:,}/{r.selected:,}",
            f"{r.errors:,}",
            f"{r.skipped_no_prompt:,}",
            r.created_at.strftime("%Y-%m-%d %H:%M:%S"),
        )
        for r in runs
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        sys.stdout.write(
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() + "\n"
        )
    return 0
