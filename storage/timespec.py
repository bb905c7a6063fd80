"""Parsing the times people type: ``30d``, ``1h30m``, or ISO 8601."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^(?:\d+(?:\.\d+)?[smhdw])+$")
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def parse_duration(text: str) -> timedelta:
    """``90s``, ``15m``, ``1h30m``, ``30d``, ``2w``; raises ValueError otherwise."""
    cleaned = text.strip().lower().replace(" ", "")
    if not _DURATION.match(cleaned):
        raise ValueError(f"not a duration: {text!r} (try 30d, 12h, 15m)")
    return timedelta(seconds=sum(float(n) * _UNITS[u] for n, u in _PART.findall(cleaned)))


def parse_when(text: str, *, now: datetime | None = None) -> datetime:
    """A point in time: a duration means that long ago; ISO 8601 without a zone means UTC."""
    now = now or datetime.now(UTC)
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"not a time: {text!r} (use ISO 8601 like 2024-05-01T12:00 or an age like 1h)"
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
