"""The overview's plots as JSON for ``static/overview.js``: columns uPlot draws as given.

Every series is a list aligned with its plot's ``x``; ``null`` where an arm has no
value there (uPlot leaves a gap). Times are epoch seconds, durations milliseconds,
rates percent.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from core import FlagState, RolloutMode
from dashboards.pages.overview_figures import OverviewFigures
from rollout.metrics import served_percent
from storage.ui_bins import BIN_RATIO, bin_bounds
from storage.ui_outcomes import RolloutPoint
from storage.ui_overview import Arm, Histogram

Column = list[float | None]


def _value(x: float) -> float | None:
    return None if math.isnan(x) else x


def _epoch(at: datetime) -> float:
    return at.timestamp()


def distribution(histograms: Iterable[Histogram]) -> dict[str, Any]:
    """Each arm's empirical CDF at the upper edge of every bin either arm has calls in."""
    found = list(histograms)
    edges = sorted({index for h in found for index in h.counts})
    plot: dict[str, Any] = {"x": [bin_bounds(index)[1] for index in edges]}
    for h in found:
        running, column = 0, []
        for index in edges:
            running += h.counts.get(index, 0)
            column.append(running / h.n if h.n else None)
        plot[h.arm.value] = column
        plot[f"{h.arm.value}_n"] = h.n
    return plot


def _aligned(times: Iterable[datetime], values: dict[str, dict[datetime, float]]) -> dict[str, Any]:
    x = sorted(set(times))
    plot: dict[str, Any] = {"x": [_epoch(t) for t in x]}
    for name, by_time in values.items():
        plot[name] = [_value(by_time[t]) if t in by_time else None for t in x]
    return plot


def quantiles_over_time(figures: OverviewFigures) -> dict[str, Any]:
    points = figures.aggregates.activity.quantiles().points
    values: dict[str, dict[datetime, float]] = {
        f"{arm.value}_{q}": {} for arm in Arm for q in ("p50", "p95")
    }
    for p in points:
        values[f"{p.arm.value}_p50"][p.bucket] = p.p50_ms
        values[f"{p.arm.value}_p95"][p.bucket] = p.p95_ms
    plot = _aligned((p.bucket for p in points), values)
    plot["resolution"] = BIN_RATIO
    return plot


def rates_over_time(figures: OverviewFigures) -> dict[str, Any]:
    rates = figures.aggregates.activity.rates
    values: dict[str, dict[datetime, float]] = {
        "primary_errors": {},
        "candidate_errors": {},
        "fallbacks": {},
    }
    for r in rates:
        values[f"{r.arm.value}_errors"][r.bucket] = 100.0 * r.error_rate
        if r.arm is Arm.CANDIDATE:
            values["fallbacks"][r.bucket] = 100.0 * r.fallback_rate
    return _aligned((r.bucket for r in rates), values)


def served_share(point: RolloutPoint) -> float:
    """The share of users the candidate served under this transition (0 while killed)."""
    if point.killed:
        return 0.0
    state = FlagState(
        key="",
        mode=RolloutMode(point.mode),
        candidate=point.candidate,
        percent=point.percent,
        shadow_rate=0.0,
        noise_rate=0.0,
    )
    return served_percent(state)


def rollout_over_time(
    history: Iterable[RolloutPoint], since: datetime | None, now: datetime
) -> dict[str, Any]:
    """The default row's served share at every transition, held to now; one mark each.
    The state the window starts in is drawn from its start."""
    points = [p for p in history if p.route is None]
    x = [_epoch(p.at if since is None else max(p.at, since)) for p in points]
    y: Column = [served_share(p) for p in points]
    marks = [f"v{p.version} {p.action} by {p.actor}" for p in points]
    if points:
        x.append(_epoch(now))
        y.append(y[-1])
        marks.append("now")
    return {"x": x, "percent": y, "marks": marks}


def outcome_bars(figures: OverviewFigures) -> dict[str, Any]:
    judge, people = figures.judge, figures.people
    return {
        "labels": ["wins", "losses", "ties", "both bad"],
        "judge": [judge.wins, judge.losses, judge.ties, None],  # a judge never says both bad
        "people": [people.wins, people.losses, people.ties, people.both_bad],
    }


def plots(figures: OverviewFigures, now: datetime) -> dict[str, Any]:
    activity = figures.aggregates.activity
    return {
        "latency": distribution(activity.latency),
        "ttft": distribution(activity.ttft),
        "quantiles": quantiles_over_time(figures),
        "rates": rates_over_time(figures),
        "rollout": rollout_over_time(figures.history, figures.window.since, now),
        "outcomes": outcome_bars(figures),
        "bucket_s": figures.window.bucket_s,
    }
