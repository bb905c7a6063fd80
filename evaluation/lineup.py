"""Every candidate against the primary: one summary row per candidate and the ranking.

Pure: each candidate's figures are its own report's (``build_report``), the ratings
are ``ranking.rank_candidates``'; this module only picks and words them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from evaluation.ranking import Ranking
from evaluation.render import json_values, report_json
from evaluation.report import Finding, Report
from evaluation.wording import fmt, fmt_interval

TYPICAL_LATENCY = "total latency: typical ratio"
ERROR_DIFFERENCE = "error rate difference"


@dataclass(frozen=True, slots=True)
class CandidateSummary:
    name: str
    pairs: int  # shadow pairs with the primary in the window
    decision: str  # the candidate's own verdict on its pairs
    latency_ratio: Finding | None  # typical total-latency ratio (Hodges–Lehmann)
    error_difference: Finding | None  # candidate minus primary error rate


@dataclass(frozen=True, slots=True)
class Lineup:
    primary: str
    candidates: tuple[CandidateSummary, ...]  # in the order compared
    ranking: Ranking


def _finding(report: Report, name: str) -> Finding | None:
    return next((f for f in report.findings if f.name == name), None)


def lineup(primary: str, reports: Mapping[str, Report], ranking: Ranking) -> Lineup:
    """The candidates' shadow reports side by side, with the ranking."""
    return Lineup(
        primary,
        tuple(
            CandidateSummary(
                name,
                report.n,
                report.verdict.decision.value,
                _finding(report, TYPICAL_LATENCY),
                _finding(report, ERROR_DIFFERENCE),
            )
            for name, report in reports.items()
        ),
        ranking,
    )


def _latency(summary: CandidateSummary) -> str:
    f = summary.latency_ratio
    if f is None:
        return "n/a"
    return f"{fmt(f.estimate, 'ratio')} ({fmt_interval(f.lower, f.upper, 'ratio')})"


def _errors(summary: CandidateSummary) -> str:
    f = summary.error_difference
    return "n/a" if f is None else fmt(f.estimate, "difference")


def _rating(value: float) -> str:
    if math.isinf(value):
        return "+inf" if value > 0 else "-inf"
    return f"{value:+.0f}"


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    return [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in (header, *rows)
    ]


def summary_rows(lineup: Lineup) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    header = (
        "candidate",
        "pairs",
        "decision",
        "latency vs primary (interval)",
        "errors vs primary",
    )
    rows: list[tuple[str, ...]] = [
        (c.name, f"{c.pairs:,}", c.decision, _latency(c), _errors(c)) for c in lineup.candidates
    ]
    return header, rows


def ranking_rows(ranking: Ranking) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    header: tuple[str, ...] = ("rank", "candidate", "rating", "interval", "pairs", "won/lost/tied")
    rows: list[tuple[str, ...]] = [
        (
            str(rank),
            s.name + (" (primary)" if s.name == ranking.primary else ""),
            *(
                ("0", "reference")
                if s.name == ranking.primary
                else (_rating(s.rating), f"{_rating(s.lower)} to {_rating(s.upper)}")
            ),
            f"{s.pairs:,}",
            f"{s.wins:,}/{s.losses:,}/{s.ties:,}",
        )
        for rank, s in enumerate(ranking.systems, start=1)
    ]
    return header, rows


def ranking_caption(ranking: Ranking) -> str:
    caption = (
        f"Bradley–Terry ratings in Elo points, {ranking.primary} at 0, from judge and "
        f"reviewer preferences (ties as half wins); {ranking.level:.0%} bootstrap intervals "
        f"over pairs, {ranking.draws:,} draws, seed {ranking.seed}"
    )
    if ranking.unrated:
        caption += f"; no judged pairs yet: {', '.join(ranking.unrated)}"
    return caption


def render_lineup_text(lineup: Lineup) -> str:
    out = ["", f"All candidates (shadow pairs against {lineup.primary}):"]
    out += [f"  {line}" for line in _table(*summary_rows(lineup))]
    out += ["", "Ranking:", f"  {ranking_caption(lineup.ranking)}"]
    if lineup.ranking.systems:
        out += [f"  {line}" for line in _table(*ranking_rows(lineup.ranking))]
    return "\n".join(out) + "\n"


def _md(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    def line(cells: tuple[str, ...]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return [line(header), "| " + " | ".join("---" for _ in header) + " |", *map(line, rows)]


def render_lineup_markdown(lineup: Lineup) -> str:
    out = ["", f"## All candidates (shadow pairs against {lineup.primary})", ""]
    out += _md(*summary_rows(lineup))
    out += ["", "## Ranking", "", ranking_caption(lineup.ranking)]
    if lineup.ranking.systems:
        out += ["", *_md(*ranking_rows(lineup.ranking))]
    return "\n".join(out) + "\n"


def lineup_json(report: Report, lineup: Lineup) -> dict[str, Any]:
    """The report's JSON with ``candidates`` (one summary each) and ``ranking`` added."""
    values = report_json(report)
    values["candidates"] = json_values(lineup.candidates)
    values["ranking"] = json_values(lineup.ranking)
    return values
