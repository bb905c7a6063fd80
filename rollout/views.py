"""The rollout as JSON, one shape for the CLI's ``--json`` and the admin API, and the
audit log in words for the CLI, the demo and the web UI."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from core import FlagState, Route
from rollout.metrics import served_percent
from storage.flags import AuditEntry

# The names people give routes, on the command line and in the admin API.
ROUTES = {
    "chat": Route.CHAT,
    "completions": Route.COMPLETIONS,
    "embeddings": Route.EMBEDDINGS,
    "responses": Route.RESPONSES,
}


def when(at: datetime | None) -> str | None:
    return at.isoformat(timespec="seconds").replace("+00:00", "Z") if at else None


def state_json(state: FlagState) -> dict[str, Any]:
    return {
        "mode": state.mode.value,
        "candidate": state.candidate,
        "percent": state.percent,
        "served_percent": served_percent(state),
        "shadow_rate": state.shadow_rate,
        "noise_rate": state.noise_rate,
        "reverse_shadow_rate": state.reverse_shadow_rate,
        "stage": state.stage,
        "paused": state.paused,
        "killed": state.killed,
        "version": state.version,
    }


def entry_json(e: AuditEntry) -> dict[str, Any]:
    return {
        "id": e.id,
        "at": when(e.at),
        "actor": e.actor,
        "action": e.action,
        "route": e.route,
        "flag_version": e.flag_version,
        "before": e.before,
        "after": e.after,
        "reason": e.reason,
        "verdict": e.verdict,
    }


def differences(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> str:
    if after is None:
        return ""
    if before is None:
        shown = {k: v for k, v in after.items() if k not in ("version", "route")}
        return ", ".join(f"{k} {v}" for k, v in shown.items())
    changed = [
        f"{k} {before.get(k)} -> {v}"
        for k, v in after.items()
        if k not in ("version", "route") and before.get(k) != v
    ]
    return ", ".join(changed) or "no value changed"


def history_line(e: AuditEntry) -> str:
    """One audit entry as a line of ``understudy rollout history``."""
    scope = e.route or "default row"
    return (
        f"{when(e.at)}  v{e.flag_version}  {e.actor:<10} {e.action:<7} {scope}: "
        f"{differences(e.before, e.after)}; reason: {e.reason or '-'}"
    )


def _number(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def verdict_lines(verdict: Mapping[str, Any] | None) -> list[str]:
    """A stored verdict's metrics, one line each, as recorded."""
    if not verdict:
        return []
    return [
        f"{m['name']}: {m['label']}, {_number(m['estimate'])} "
        f"(interval {_number(m['lower'])} to {_number(m['upper'])}, "
        f"margin {_number(m['margin'])}, {m['n']} pairs)"
        for m in verdict.get("metrics", ())
    ]


def duration_text(seconds: float | None) -> str:
    """A plan's duration in its largest whole unit: 90 -> "90s", 3600 -> "1h"; None -> "-"."""
    if seconds is None:
        return "-"
    for size, unit in ((86_400, "d"), (3_600, "h"), (60, "m")):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"
