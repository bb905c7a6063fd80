"""``understudy exchanges list|show``: read recorded exchanges as a table or JSON."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from core import Exchange, Observation, Role, Route
from storage import codec
from storage.judgments import Judgment, list_judgments
from storage.repository import find_by_prefix, get_exchange, list_exchanges
from storage.window import ExchangeWindow
from understudy.commands.common import (
    Subparsers,
    add_config_option,
    settings_from_args,
    strict_json,
    when,
)
from understudy.commands.db import fail, open_current, run_storage

FORMATS = ("table", "json")
MIN_PREFIX = 4


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser("exchanges", help="list and show recorded exchanges")
    actions = parser.add_subparsers(dest="exchanges_command", metavar="ACTION", required=True)

    listing = actions.add_parser("list", help="recorded exchanges, newest first")
    listing.add_argument("--since", type=when, help="ISO 8601 time, or an age like 1h or 7d")
    listing.add_argument("--until", type=when, help="ISO 8601 time, or an age like 10m")
    listing.add_argument("--route", choices=[r.value for r in Route])
    listing.add_argument("--candidate", metavar="NAME", help="the shadow or split candidate")
    listing.add_argument(
        "--served",
        metavar="ARM",
        help="who answered the client: primary, candidate, or an upstream name",
    )
    listing.add_argument(
        "--role", choices=[r.value for r in Role], help="only exchanges with an arm in this role"
    )
    listing.add_argument("--limit", type=_positive, default=50, help="at most N (default 50)")
    listing.add_argument("--format", choices=FORMATS, default="table")
    listing.set_defaults(func=lambda a: run_storage(_list(a)))

    show = actions.add_parser("show", help="one exchange with all its observations")
    show.add_argument("id", metavar="ID", help="the exchange id, or a unique prefix of it")
    show.add_argument("--format", choices=FORMATS, default="table")
    show.set_defaults(func=lambda a: run_storage(_show(a)))

    for sub in (listing, show):
        add_config_option(sub)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


async def _list(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    window = ExchangeWindow(
        candidate=args.candidate,
        since=args.since,
        until=args.until,
        route=Route(args.route) if args.route else None,
    )
    role = Role(args.role) if args.role else None
    async with await open_current(settings.database_url) as db:
        found = await list_exchanges(db, window, served=args.served, role=role, limit=args.limit)
    if args.format == "json":
        _write_json([codec.exchange_to_json(e) for e in found])
    else:
        sys.stdout.write(render_table(found))
    return 0


async def _show(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    async with await open_current(settings.database_url) as db:
        ids = await find_by_prefix(db, args.id) if len(args.id) >= MIN_PREFIX else []
        if not ids:
            return fail(f"no exchange with id {args.id!r}")
        if len(ids) > 1:
            return fail(f"id prefix {args.id!r} is ambiguous: give more characters")
        exchange = await get_exchange(db, ids[0])
        judgments = await list_judgments(db, exchange_id=ids[0])
    if exchange is None:  # deleted between the two reads
        return fail(f"no exchange with id {args.id!r}")
    if args.format == "json":
        data = codec.exchange_to_json(exchange)
        data["judgments"] = [judgment_to_json(j) for j in judgments]
        _write_json(data)
    else:
        sys.stdout.write(render_exchange(exchange, judgments))
    return 0


def _write_json(data: Any) -> None:
    sys.stdout.write(strict_json(data) + "\n")


def judgment_to_json(j: Judgment) -> dict[str, Any]:
    return {
        "id": str(j.id),
        "candidate": j.candidate,
        "judge_model": j.judge_model,
        "prompt_version": j.prompt_version,
        "outcome": j.outcome.value,
        "created_at": j.created_at.isoformat(),
        "detail": dict(j.detail) if j.detail is not None else None,
    }


# -- tables -----------------------------------------------------------------------


def _arm(obs: Observation | None) -> tuple[str, str]:
    """An arm's outcome and latency, as short cells."""
    if obs is None:
        return "-", "-"
    outcome = obs.error_kind.value if obs.error_kind else str(obs.status or "-")
    latency = f"{obs.latency_ms:.0f}" if obs.latency_ms is not None else "-"
    return outcome, latency


def _row(e: Exchange) -> list[str]:
    served, served_ms = _arm(e.arm(Role.SERVED))
    # The arm called in the background: the candidate's shadow, or after cutover the
    # primary's reverse shadow.
    shadow, shadow_ms = _arm(e.arm(Role.SHADOW) or e.arm(Role.REVERSE_SHADOW))
    return [
        str(e.id),
        e.created_at.strftime("%Y-%m-%d %H:%M:%S"),
        e.route.value,
        e.requested_model,
        e.decision.mode.value,
        e.served_by + (" (fallback)" if e.fallback else ""),
        served,
        served_ms,
        codec.candidate_of(e.decision) or "-",
        shadow,
        shadow_ms,
    ]


HEADERS = [
    "ID",
    "CREATED (UTC)",
    "ROUTE",
    "MODEL",
    "MODE",
    "SERVED BY",
    "STATUS",
    "MS",
    "CANDIDATE",
    "SHADOW",
    "SHADOW MS",
]


def render_table(exchanges: Sequence[Exchange]) -> str:
    if not exchanges:
        return "no exchanges match\n"
    rows = [HEADERS, *(_row(e) for e in exchanges)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADERS))]
    return "".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() + "\n"
        for r in rows
    )


def _indent(text: str, prefix: str = "    ") -> str:
    return "".join(prefix + line + "\n" for line in text.splitlines() or [""])


def render_exchange(e: Exchange, judgments: Sequence[Judgment] = ()) -> str:
    d = e.decision
    lines = [
        f"exchange    {e.id}",
        f"created     {e.created_at.isoformat()}",
        f"route       {e.route.value}   model {e.requested_model}   stream {e.stream}",
        f"subject     {e.subject_hash}",
        f"decision    mode {d.mode.value}, percent {d.percent:g}, flag version "
        f"{d.flag_version}, bucket {d.bucket}",
        f"            planned {d.served} (candidate: {d.served_is_candidate}), "
        f"shadow {d.shadow or '-'}, noise {d.noise}",
        f"served by   {e.served_by}" + ("   (fallback to the primary)" if e.fallback else ""),
    ]
    out = "\n".join(lines) + "\n"
    if e.request:
        out += "request\n" + _indent(strict_json(dict(e.request)))
    else:
        out += "request     (not stored)\n"
    for i, obs in enumerate(e.observations, start=1):
        out += _render_observation(i, obs)
    for j in judgments:
        out += f"judgment    {j.outcome} preferred by {j.judge_model} ({j.prompt_version}) "
        out += f"for {j.candidate} at {j.created_at.isoformat()}\n"
    return out


def _render_observation(number: int, o: Observation) -> str:
    def ms(value: float | None) -> str:
        return f"{value:.1f} ms" if value is not None else "-"

    u = o.usage
    lines = [
        f"arm {number}: {o.role.value} — {o.upstream} ({o.model})",
        f"    status {o.status if o.status is not None else '-'}"
        f"   error {o.error_kind.value if o.error_kind else '-'}"
        f"   latency {ms(o.latency_ms)}   ttft {ms(o.ttft_ms)}",
        f"    tokens prompt {u.prompt_tokens} completion {u.completion_tokens} "
        f"cached {u.cached_tokens}   finish {o.finish_reason or '-'}"
        + ("   (truncated)" if o.truncated else ""),
    ]
    if o.embedding_dims is not None:
        lines.append(f"    embedding of {o.embedding_dims} dimensions")
    out = "\n".join(lines) + "\n"
    for call in o.tool_calls:
        ident = f" id {call.id}" if call.id else ""
        out += f"    tool call {call.name}({call.arguments}){ident}\n"
    if o.text is not None:
        out += _indent(o.text, "    | ")
    return out
