"""The rollout as JSON: one shape for the CLI's ``--json`` and the admin API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from core import FlagState, Route
from rollout.metrics import served_percent
from storage.flags import AuditEntry

# The names people give routes, on the command line and in the admin API.
ROUTES = {"chat": Route.CHAT, "completions": Route.COMPLETIONS, "embeddings": Route.EMBEDDINGS}


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
