"""``understudy demo``: a rollout told end to end, with simulated upstreams and traffic.

The proxy starts in shadow in front of a simulated OpenAI and a simulated self-hosted
candidate; the controller promotes the candidate stage by stage on a short plan, and
each change is printed from the audit log as it is recorded. ``--scenario regression``
makes the candidate degrade part-way, and the controller rolls it back.

The web UI is served beside the proxy, with an admin token drawn for the run and a
reviewer's invite; after the story it stays open until Ctrl-C, so people can look at
the run, review its pairs and move the rollout themselves (``--exit`` ends at once).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import sys
import textwrap
from dataclasses import dataclass

from core import RolloutMode
from migrations import ensure_schema
from proxy.config import Limits
from rollout.changes import NewValues, RolloutAction
from rollout.plan import Stage, StagePlan
from rollout.store import RolloutStore
from rollout.views import history_line
from storage.database import Database, is_sqlite
from storage.flags import audit_entries
from understudy.commands.common import Subparsers, settings_from_args
from understudy.demo_story import (
    CONTROLLER_INTERVAL_S,
    REGRESSION_FROM_PERCENT,
    STAGE_GATES,
    STAGE_MIN_PAIRS,
    STAGE_MIN_S,
    Scenario,
    StoryEnd,
    Storyteller,
    demo_stages,
)
from understudy.demo_traffic import generate
from understudy.demo_ui import DEMO_ADMIN, UiHandOff, demo_admin_token, hand_off
from understudy.logs import configure_logging
from understudy.plan_settings import stage_plan
from understudy.server import RunningSite, run, start_site, wait_for_stop_signal
from understudy.settings import LogFormat, Settings
from understudy.simulated import (
    CANDIDATE_PERSONA,
    DEGRADED_CANDIDATE_PERSONA,
    OPENAI_PERSONA,
    SimulatedUpstream,
)
from understudy.upstream_keys import secret_redactor
from understudy.wiring import build_app, rollout_store

ACTOR = "demo"
CANDIDATE = "local-llama"
SIMULATED_IDLE_S = 120.0  # how long the simulated upstreams keep an idle connection
DEFAULT_RATE = 20.0  # requests per second: each stage's pairs arrive in seconds
KEEP_OPEN, EXIT = "keep-open", "exit"  # what follows the story


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a number above 0, got {text!r}")
    return value


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="watch a rollout: built-in simulated upstreams, traffic, and the controller",
    )
    parser.add_argument("--port", type=int, default=8080, help="proxy port (default 8080)")
    parser.add_argument(
        "--rate",
        type=_positive,
        default=DEFAULT_RATE,
        help=f"generated requests per second (default {DEFAULT_RATE:g})",
    )
    parser.add_argument(
        "--scenario",
        choices=[s.value for s in Scenario],
        default=Scenario.HEALTHY.value,
        help=(
            "healthy: the candidate is promoted to 100 %%; regression: it degrades at "
            f"{REGRESSION_FROM_PERCENT:g} %% and is rolled back (default healthy)"
        ),
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        help="end the story and its traffic after this many seconds even if it is not over",
    )
    after = parser.add_mutually_exclusive_group()
    after.add_argument(
        "--keep-open",
        dest="after_story",
        action="store_const",
        const=KEEP_OPEN,
        help="after the story, keep the web UI open until Ctrl-C (the default on a terminal)",
    )
    after.add_argument(
        "--exit",
        dest="after_story",
        action="store_const",
        const=EXIT,
        help="end when the story ends (the default without a terminal)",
    )
    parser.add_argument("--verbose", action="store_true", help="print one log line per exchange")
    parser.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    return run(demo(args))


def _out(line: str = "") -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def demo(args: argparse.Namespace) -> int:
    scenario = Scenario(args.scenario)
    primary = SimulatedUpstream(OPENAI_PERSONA)
    candidate = SimulatedUpstream(CANDIDATE_PERSONA)
    # Idle connections stay open as long as at a real upstream: the proxy keeps its
    # upstream connections 30 s, and a server that cut them sooner would write a 408
    # onto a connection the proxy may be about to reuse.
    patient = Limits(header_timeout_s=SIMULATED_IDLE_S)
    openai_site = await start_site(primary.app, "127.0.0.1", 0, limits=patient)
    local_site = await start_site(candidate.app, "127.0.0.1", 0, limits=patient)
    try:
        return await _tell(args, scenario, candidate, openai_site, local_site)
    finally:
        await _stop(openai_site, local_site)


async def _tell(
    args: argparse.Namespace,
    scenario: Scenario,
    candidate: SimulatedUpstream,
    openai_site: RunningSite,
    local_site: RunningSite,
) -> int:
    token = demo_admin_token()
    settings = _settings(args, openai_site, local_site, token)
    configure_logging(settings.log_level, settings.log_format, redact=secret_redactor(settings))
    plan = stage_plan(settings.rollout.plan)
    await ensure_schema(settings.database_url, auto_upgrade=is_sqlite(settings.database_url))
    db = Database(settings.database_url)
    proxy: RunningSite | None = None
    try:
        before_run = await _newest_entry_id(db)
        await start_in_shadow(rollout_store(settings, db), plan, settings)
        proxy = await start_site(build_app(settings), settings.host, settings.port)
        ui = await hand_off(db, settings, proxy.url, token)
        keep_open = _keeps_ui_open(args)
        _print_guide(proxy, settings, scenario, ui, keep_open=keep_open)

        def on_stage(stage: Stage) -> None:
            degrade = scenario is Scenario.REGRESSION and stage.percent >= REGRESSION_FROM_PERCENT
            if degrade and candidate.persona is not DEGRADED_CANDIDATE_PERSONA:
                candidate.persona = DEGRADED_CANDIDATE_PERSONA
                _out(_degradation())

        teller = Storyteller(db, plan, _out, after_id=before_run, on_stage=on_stage)
        counts: dict[str, int] = {}
        told = await _tell_until_done(teller, f"{proxy.url}/v1", args, counts)
        keep_open = keep_open and not told.interrupted
        if not keep_open:
            await proxy.stop()  # the controller stops with it: the history below is final
            proxy = None
        _out()
        end = told.end
        _out(f"The story ends: {end.why}." if end else "Stopped before the story ended.")
        await _print_history(db, before_run)
        _print_report(settings, counts)
        if proxy is not None:
            _print_open_ui(proxy, ui)
            await _keep_telling(teller)
        elif args.after_story is None and not told.interrupted:
            _out("No terminal to press Ctrl-C in, so the demo ends here: --keep-open keeps")
            _out("the web UI open after the story.")
    finally:
        if proxy is not None:
            await proxy.stop()
        await db.dispose()
    return 0


def _keeps_ui_open(args: argparse.Namespace) -> bool:
    """After the story: as asked, else open where someone can press Ctrl-C to end it."""
    if args.after_story is not None:
        return bool(args.after_story == KEEP_OPEN)
    return sys.stdin.isatty()


def _settings(
    args: argparse.Namespace, openai_site: RunningSite, local_site: RunningSite, admin_token: str
) -> Settings:
    return settings_from_args(
        args,
        port=args.port,
        # The web UI beside the proxy, for this run's admin only.
        admin_port=None,
        admin_token=None,
        admin_tokens={DEMO_ADMIN: admin_token},
        primary={"base_url": f"{openai_site.url}/v1", "api_key": "sk-demo-not-a-real-key"},
        candidates=[
            {
                "name": CANDIDATE,
                "base_url": f"{local_site.url}/v1",
                "kind": "openai",
                "model_map": {"gpt-4o-mini": "llama-3.1-8b-instruct"},
                "timeout_s": 30,
            }
        ],
        # Off until the demo puts it in shadow: an empty store is seeded with this.
        rollout={
            "mode": "off",
            "candidate": CANDIDATE,
            # Every request makes a pair, whoever serves it: the users on the primary are
            # mirrored to the candidate, the candidate's users to the primary.
            "shadow_rate": 1.0,
            "reverse_shadow_rate": 1.0,
            "plan": demo_stages(),
            "controller": {"interval_s": CONTROLLER_INTERVAL_S},
        },
        noise_rate=0.2,
        log_level="info" if args.verbose else "warning",
        log_format=LogFormat.CONSOLE,
    )


async def _newest_entry_id(db: Database) -> int:
    newest = await audit_entries(db, limit=1)
    return newest[0].id if newest else 0


async def start_in_shadow(store: RolloutStore, plan: StagePlan, settings: Settings) -> None:
    """Put the rollout at the plan's first stage with a fresh window, running.

    The demo's database may hold an earlier run's rollout: killed, paused after a
    rollback, or already in shadow with that run's pairs in its window. A stage's
    window starts when the rollout enters it, so a rollout already in shadow is first
    switched off, and this run's shadow stage judges this run's pairs only.
    """
    rows = await store.rows()
    current = rows[None]
    shadow = plan.first
    why = "understudy demo: a fresh start"
    if current.paused:
        await store.change(RolloutAction.RESUME, actor=ACTOR, reason=why)
    if current.killed:
        await store.change(RolloutAction.UNKILL, actor=ACTOR, reason=why)
    stored = current.version > 0
    located = plan.locate(
        current.stage, RolloutMode(current.mode), current.percent, current.candidate
    )
    if stored and located == shadow:
        await store.change(
            RolloutAction.SET,
            actor=ACTOR,
            reason=f"{why}: the earlier run's shadow pairs are not this run's",
            values=NewValues(mode=RolloutMode.OFF),
        )
    await store.change(
        RolloutAction.SET,
        actor=ACTOR,
        reason="understudy demo: start in shadow; the controller takes it from here",
        values=NewValues(
            mode=shadow.mode,
            candidate=CANDIDATE,
            percent=shadow.percent,
            shadow_rate=settings.rollout.shadow_rate,
            reverse_shadow_rate=settings.rollout.reverse_shadow_rate,
            noise_rate=settings.noise_rate,
        ),
    )


@dataclass(frozen=True, slots=True)
class Told:
    end: StoryEnd | None  # None: stopped (Ctrl-C, --duration) before the story ended
    interrupted: bool  # by Ctrl-C


async def _tell_until_done(
    teller: Storyteller, base_url: str, args: argparse.Namespace, counts: dict[str, int]
) -> Told:
    """Traffic runs while the story is told, until it ends, Ctrl-C or --duration."""
    loop = asyncio.get_running_loop()
    traffic = loop.create_task(generate(base_url, args.rate, counts, _out), name="demo-traffic")
    story = loop.create_task(teller.follow(), name="demo-story")
    stop = loop.create_task(wait_for_stop_signal(), name="demo-stop")
    tasks = {traffic, story, stop}
    try:
        done, _pending = await asyncio.wait(
            tasks, timeout=args.duration, return_when=asyncio.FIRST_COMPLETED
        )
        if traffic in done:
            traffic.result()  # traffic ends only by failing: say how
        return Told(story.result() if story in done else None, interrupted=stop in done)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _degradation() -> str:
    was, now = CANDIDATE_PERSONA, DEGRADED_CANDIDATE_PERSONA
    return (
        "         !! the candidate degrades now (a simulated bad deployment): it generates "
        f"{now.per_token_s / was.per_token_s:.3g}x slower, and {now.error_rate:.0%} of its "
        f"answers fail (was {was.error_rate:.0%})"
    )


async def _keep_telling(teller: Storyteller) -> None:
    """Until Ctrl-C: the UI stays open, and changes made in it are told as they are recorded."""
    loop = asyncio.get_running_loop()

    async def tell_on() -> None:
        while True:
            await teller.follow()

    telling = loop.create_task(tell_on(), name="demo-story-after")
    stop = loop.create_task(wait_for_stop_signal(), name="demo-stop-after")
    try:
        await asyncio.wait({telling, stop}, return_when=asyncio.FIRST_COMPLETED)
        if telling.done():
            telling.result()  # telling ends only by failing: say how
    finally:
        for task in (telling, stop):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    _out("Stopped.")


def _print_open_ui(proxy: RunningSite, ui: UiHandOff) -> None:
    _out()
    _out(f"Traffic has stopped; the proxy still answers on {proxy.url}/v1.")
    for line in ui.lines():
        _out(line)
    _out("  Its Rollout page moves the rollout: each change asks for a reason and a confirmation,")
    _out("  and is told here as it is recorded.")
    _out("The web UI stays open: Ctrl-C ends the demo.")


def _print_guide(
    proxy: RunningSite,
    settings: Settings,
    scenario: Scenario,
    ui: UiHandOff,
    *,
    keep_open: bool,
) -> None:
    base = f"{proxy.url}/v1"
    plan = settings.rollout.plan
    margin = settings.evaluation.latency_margin
    _out(f"Understudy demo: proxy on {base}")
    _out("  primary:   a simulated OpenAI (built in)")
    _out(f"  candidate: {CANDIDATE!r}, a simulated self-hosted model (built in), faster")
    _out()
    stages = " -> ".join(s.name for s in plan)
    gates = " and ".join(g.value for g in STAGE_GATES)
    explained = (
        f"A stage lasts at least {STAGE_MIN_S:g}s and {STAGE_MIN_PAIRS} answer pairs (each "
        "request makes one: the primary's users are mirrored to the candidate, and the "
        "candidate's users to the primary, the reverse shadow). Every "
        f"{settings.rollout.controller.interval_s:g}s the controller judges "
        f"the stage's own pairs. It promotes once {gates} (the candidate's time over the "
        f"primary's) are shown under {margin:g}, at most {(margin - 1) * 100:.0f}% slower, "
        "and rolls back at once when a guardrail is shown worse than the primary's."
    )
    if scenario is Scenario.REGRESSION:
        explained += (
            " In this run the candidate degrades once it serves "
            f"{REGRESSION_FROM_PERCENT:g} % of users."
        )
    _out(f"The plan: {stages} of users served by the candidate.")
    _out(textwrap.fill(explained, width=88, initial_indent="  ", subsequent_indent="  "))
    _out()
    _out("Meanwhile, watch it in a browser:")
    for line in ui.lines():
        _out(f"  {line}")
    _out("or in another terminal:")
    _out(f"  curl -s {proxy.url}/metrics | grep understudy_rollout")
    _out("  understudy rollout status          # where the rollout stands")
    _out("  understudy exchanges list          # the recorded answer pairs")
    _out()
    after = "the web UI stays open until Ctrl-C" if keep_open else "the demo ends"
    _out(f"Generating traffic; when the story ends, {after} (Ctrl-C stops it sooner).")


async def _print_history(db: Database, before_run: int) -> None:
    entries = [e for e in await audit_entries(db, limit=200) if e.id > before_run]
    _out()
    _out("Rollout history of this run (newest first, as `understudy rollout history` shows it):")
    for e in entries:
        _out(history_line(e))


def _print_report(settings: Settings, counts: dict[str, int]) -> None:
    _out()
    _out(f"demo finished: answers by {json.dumps(counts, sort_keys=True)}")
    _out(f"recorded pairs are in {settings.database_url}; see them with:")
    _out("  understudy exchanges list")
    _out("  understudy rollout history")


async def _stop(*sites: RunningSite) -> None:
    for site in sites:
        await site.stop()
