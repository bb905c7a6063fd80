"""``understudy rollout status|set|pause|resume|kill|unkill|history``: the rollout, by hand.

Works on the database directly, so it needs no running server: every replica picks
a change up within a second. Each change is checked, versioned and written to the
audit log with its reason, by the actor ``cli``.
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

from core import FlagState, RolloutMode, Route
from rollout.changes import NewValues, RolloutAction, RolloutRefused
from rollout.metrics import served_percent
from rollout.state import RolloutSnapshot
from rollout.views import ROUTES, entry_json, history_line, state_json, when
from storage.database import Database
from storage.flags import audit_entries
from understudy.commands.common import (
    Subparsers,
    add_config_option,
    settings_from_args,
    strict_json,
)
from understudy.commands.db import fail, open_current, run_storage
from understudy.settings import Settings
from understudy.wiring import rollout_rules, rollout_store

ACTOR = "cli"
_TOGGLES = {
    RolloutAction.PAUSE: "stop automatic changes (the controller holds the current stage)",
    RolloutAction.RESUME: "let automatic changes continue",
    RolloutAction.KILL: "send every request to the primary only, until unkill",
    RolloutAction.UNKILL: "end a kill: routing follows the rollout state again",
}


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return value


def _add_change_options(parser: argparse.ArgumentParser) -> None:
    add_config_option(parser)
    parser.add_argument(
        "--route",
        choices=sorted(ROUTES),
        help=(
            "change only this route (it gets its own row); without it the default row "
            "changes, which every route without its own row follows (a kill stops them all)"
        ),
    )
    parser.add_argument(
        "--reason", required=True, help="why: kept in the audit log (`rollout history`)"
    )


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser("rollout", help="see and change the rollout")
    actions = parser.add_subparsers(dest="rollout_command", metavar="ACTION", required=True)

    status = actions.add_parser("status", help="the rollout state of every route")
    add_config_option(status)
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(func=lambda a: _run(a, _status))

    change = actions.add_parser(
        "set",
        help="set the candidate's share, the mode, the candidate or the sampling rates",
        description=(
            "--percent alone moves to split when above 0, and from split back to shadow at 0."
        ),
    )
    _add_change_options(change)
    change.add_argument("--percent", type=_number, help="share of users served, 0-100")
    change.add_argument("--mode", choices=[m.value for m in RolloutMode])
    change.add_argument("--candidate", help="a configured candidate's name")
    change.add_argument("--shadow-rate", type=_number, help="share mirrored to the candidate, 0-1")
    change.add_argument("--noise-rate", type=_number, help="share sent twice to the primary, 0-1")
    change.add_argument(
        "--reverse-shadow-rate",
        type=_number,
        help="share of candidate-served requests also sent to the primary, 0-1",
    )
    change.set_defaults(func=lambda a: _run(a, _set))

    # The stage plan's verbs (plan, promote, rollback) share this command's helpers.
    from understudy.commands.rollout_stages import register_stages

    register_stages(actions)

    for action, text in _TOGGLES.items():
        toggle = actions.add_parser(action.value, help=text)
        _add_change_options(toggle)
        toggle.set_defaults(func=lambda a, action=action: _run(a, _toggle, action))

    history = actions.add_parser("history", help="every change, newest first, with its reason")
    add_config_option(history)
    history.add_argument("--limit", type=int, default=20, help="how many entries (default 20)")
    history.add_argument("--json", action="store_true", help="print JSON")
    history.set_defaults(func=lambda a: _run(a, _history))


def _run(args: argparse.Namespace, work: Any, *extra: Any) -> int:
    settings = settings_from_args(args)

    async def with_db() -> int:
        async with await open_current(settings.database_url) as db:
            try:
                code: int = await work(args, settings, db, *extra)
            except RolloutRefused as exc:
                return fail(f"cannot change the rollout: {exc}")
            return code

    return run_storage(with_db())


async def _set(args: argparse.Namespace, settings: Settings, db: Database) -> int:
    values = NewValues(
        mode=RolloutMode(args.mode) if args.mode else None,
        candidate=args.candidate,
        percent=args.percent,
        shadow_rate=args.shadow_rate,
        noise_rate=args.noise_rate,
        reverse_shadow_rate=args.reverse_shadow_rate,
    )
    return await _change(args, settings, db, RolloutAction.SET, values)


async def _toggle(
    args: argparse.Namespace, settings: Settings, db: Database, action: RolloutAction
) -> int:
    return await _change(args, settings, db, action, None)


async def _change(
    args: argparse.Namespace,
    settings: Settings,
    db: Database,
    action: RolloutAction,
    values: NewValues | None,
) -> int:
    route = ROUTES[args.route] if args.route else None
    store = rollout_store(settings, db)
    change = await store.change(action, actor=ACTOR, reason=args.reason, route=route, values=values)
    scope = route.value if route else "default row"
    sys.stdout.write(f"{action.value} ({scope}): rollout now at version {change.version}\n")
    await _show(settings, db, as_json=False)
    return 0


async def _status(args: argparse.Namespace, settings: Settings, db: Database) -> int:
    await _show(settings, db, as_json=args.json)
    return 0


def _route_line(route: Route, state: FlagState, own_row: bool) -> str:
    if state.killed:
        serving = "KILLED: primary only"
    elif state.candidate is None or state.mode is RolloutMode.OFF:
        serving = "off: primary only"
    else:
        share = served_percent(state)
        serving = f"{state.mode.value} to {state.candidate}, {share:g}% of users served by it"
    details = [
        f"shadow rate {state.shadow_rate:g}",
        f"noise rate {state.noise_rate:g}",
        f"reverse shadow rate {state.reverse_shadow_rate:g}",
        f"stage {state.stage or '-'}",
        "paused" if state.paused else "running",
        "own row" if own_row else "default row",
    ]
    return f"  {route.value:<17} {serving}; {', '.join(details)}\n"


async def _show(settings: Settings, db: Database, *, as_json: bool) -> None:
    rows = await rollout_store(settings, db).rows()
    snapshot = RolloutSnapshot.build(rows, rollout_rules(settings))
    kill_file = settings.kill_file
    kill_file_present = kill_file is not None and kill_file.exists()
    if as_json:
        data = {
            "version": snapshot.version,
            "changed_at": when(max(rows.values(), key=lambda r: r.version).changed_at),
            "kill_file": {
                "path": str(kill_file) if kill_file else None,
                "present": kill_file_present,
            },
            "routes": {
                route.value: {**state_json(state), "own_row": route.value in rows}
                for route, state in snapshot.states.items()
            },
        }
        sys.stdout.write(strict_json(data) + "\n")
        return
    if snapshot.version == 0:
        sys.stdout.write("rollout version 0: nothing stored yet, the settings below seed it\n")
    else:
        newest = max(rows.values(), key=lambda r: r.version)
        sys.stdout.write(f"rollout version {snapshot.version}, changed {when(newest.changed_at)}\n")
    for route, state in snapshot.states.items():
        sys.stdout.write(_route_line(route, state, route.value in rows))
    if kill_file_present:
        sys.stdout.write(
            f"kill file {kill_file} exists: every replica serves from the primary only\n"
        )
    for name in sorted(snapshot.unknown_candidates):
        sys.stdout.write(
            f"candidate {name!r} is not configured here: its routes stay on the primary\n"
        )


async def _history(args: argparse.Namespace, settings: Settings, db: Database) -> int:
    entries = await audit_entries(db, limit=max(args.limit, 1))
    if args.json:
        sys.stdout.write(strict_json([entry_json(e) for e in entries]) + "\n")
        return 0
    if not entries:
        sys.stdout.write("no rollout changes yet\n")
    for e in entries:
        sys.stdout.write(history_line(e) + "\n")
    return 0


__all__ = ["register"]
