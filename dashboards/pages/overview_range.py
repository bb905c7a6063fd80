"""The overview's time ranges, and the window each is counted over.

A range starts at the start of the block (``chunk_s`` long, aligned to the epoch)
holding ``now - span``, so it covers at least its span and at most one block more,
its start moves in steps the page can name, and it falls on the rollups' periods
(``storage.rollups``), which its buckets are made of. The page says where it starts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from storage.rollups import GRAINS
from storage.window import ExchangeWindow


@dataclass(frozen=True, slots=True)
class TimeRange:
    key: str  # as in the URL: ?range=24h
    label: str
    span_s: int | None  # None: everything recorded
    bucket_s: int  # the plots' time buckets (ranges of everything choose their own)
    chunk_s: int  # a multiple of bucket_s


RANGES = (
    TimeRange("1h", "last hour", 3600, 60, 900),
    TimeRange("24h", "last 24 hours", 86_400, 900, 3 * 3600),
    TimeRange("7d", "last 7 days", 7 * 86_400, 3600, 86_400),
    TimeRange("all", "everything", None, 0, 0),
)
DEFAULT_RANGE = "24h"
# Buckets for everything recorded: the first that draws the whole span in at most
# MAX_BUCKETS. The rollups' grains, so a bucket is one period read; then weeks of days.
BUCKET_LADDER = (*GRAINS, 7 * 86_400)
MAX_BUCKETS = 240


def time_range(key: str | None) -> TimeRange | None:
    """The range a URL asks for; None for a key that names none (the default when absent)."""
    wanted = DEFAULT_RANGE if key is None else key
    return next((r for r in RANGES if r.key == wanted), None)


@dataclass(frozen=True, slots=True)
class PageWindow:
    """What one overview counts: from ``since`` (None: the first exchange) to now."""

    candidate: str
    since: datetime | None
    bucket_s: int

    @property
    def whole(self) -> ExchangeWindow:
        return ExchangeWindow(self.candidate, since=self.since)


def _at(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)


def everything_bucket(first_seen: datetime | None, now: datetime) -> int:
    span = (now - first_seen).total_seconds() if first_seen is not None else 0.0
    return next((b for b in BUCKET_LADDER if span / b <= MAX_BUCKETS), BUCKET_LADDER[-1])


def range_start(chosen: TimeRange, now: datetime) -> datetime | None:
    """Where the range starts at ``now``, as ``page_window`` counts it: the start of the
    chunk holding ``now - span``; None for everything recorded."""
    if chosen.span_s is None:
        return None
    return _at(math.floor((now.timestamp() - chosen.span_s) / chosen.chunk_s) * chosen.chunk_s)


def page_window(
    chosen: TimeRange, candidate: str, now: datetime, first_seen: datetime | None
) -> PageWindow:
    if chosen.span_s is None:
        return PageWindow(candidate, None, everything_bucket(first_seen, now))
    return PageWindow(candidate, range_start(chosen, now), chosen.bucket_s)
