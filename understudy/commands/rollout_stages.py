"""``understudy rollout plan|promote|rollback``: the stage plan, and moving along it by hand.

``promote`` is how a person takes a manual stage's step (or any step early);
``rollback`` sends the rollout back to the plan's shadow stage, paused. Both are
based on the version they read: a change made in between refuses them.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from core import Route
from rollout.changes import RolloutAction, stage_move
from rollout.views import duration_text
from storage.database import Database
from storage.flags import StaleVersion
from understudy.commands.common import add_config_option, settings_from_args, strict_json
from understudy.commands.db import fail
from understudy.plan_settings import stage_plan
from understudy.settings import Settings
from understudy.wiring import rollout_store

if TYPE_CHECKING:
    from understudy.commands.common import Subparsers

_MOVES = {
    RolloutAction.PROMOTE: "move to the plan's next stage now (a manual stage waits for this)",
    RolloutAction.ROLLBACK: "candidate share to 0, back to the plan's shadow stage, paused",
}


def register_stages(actions: Subparsers) -> None:
    from understudy.commands.rollout import _add_change_options, _run

    plan = actions.add_parser("plan", help="the stage plan the controller follows")
    add_config_option(plan)
    plan.add_argument("--json", action="store_true", help="print JSON")
    plan.set_defaults(func=_plan)
    for action, text in _MOVES.items():
        move = actions.add_parser(action.value, help=text)
        _add_change_options(move)
        move.set_defaults(func=lambda a, action=action: _run(a, _move, action))


async def _move(
    args: argparse.Namespace, settings: Settings, db: Database, action: RolloutAction
) -> int:
    from understudy.commands.rollout import ACTOR, _show

    route = Route[args.route.upper()] if args.route else None
    store = rollout_store(settings, db)
    rows = await store.rows()
    row = rows[None] if route is None else rows.get(route.value, rows[None])
    stage, to, move = stage_move(stage_plan(settings.rollout.plan), action, row)
    latest = max(r.version for r in rows.values())
    try:
        change = await store.change(
            action,
            actor=ACTOR,
            reason=args.reason,
            route=route,
            values=move,
            expected_version=latest or None,  # 0: nothing stored yet, the seed is written now
        )
    except StaleVersion as exc:
        return fail(f"cannot change the rollout: {exc}")
    scope = route.value if route else "default row"
    sys.stdout.write(
        f"{action.value} ({scope}): stage {stage.name if stage else '-'} -> {to.name}, "
        f"rollout now at version {change.version}\n"
    )
    await _show(settings, db, as_json=False)
    return 0


def _plan(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    plan = stage_plan(settings.rollout.plan)
    default_units = settings.evaluation.min_samples
    if args.json:
        stages = [
            {
                "name": s.name,
                "mode": s.mode.value,
                "percent": s.percent,
                "min_units": s.min_units or default_units,
                "min_duration_s": s.min_duration_s,
                "max_duration_s": s.max_duration_s,
                "gates": list(s.gates),
                "promotion": s.promotion.value,
            }
            for s in plan.stages
        ]
        sys.stdout.write(strict_json({"stages": stages}) + "\n")
        return 0
    sys.stdout.write(
        f"{'stage':<8} {'mode':<8} {'users':>6} {'min units':>10} {'min time':>9} "
        f"{'max time':>9}  {'promotion':<9}  gates\n"
    )
    for s in plan.stages:
        units = f"{s.min_units or default_units:,}"
        sys.stdout.write(
            f"{s.name:<8} {s.mode.value:<8} {s.percent:>5g}% {units:>10} "
            f"{duration_text(s.min_duration_s):>9} {duration_text(s.max_duration_s):>9}  "
            f"{s.promotion.value:<9}  {', '.join(s.gates) or 'every metric'}\n"
        )
    sys.stdout.write(
        "units: pairs in shadow, candidate-served requests in split and cutover.\n"
        "manual: the controller waits for `understudy rollout promote`.\n"
        "past the max time without a decision the controller pauses the rollout for a person;\n"
        "it never promotes by timeout.\n"
    )
    return 0
