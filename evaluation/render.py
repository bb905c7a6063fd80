"""Render a Report as plain text, Markdown or JSON."""

from __future__ import annotations

import dataclasses
import json
import math
from datetime import date
from enum import Enum
from typing import Any

from core import MetricResult
from evaluation.columns import ComparisonMode
from evaluation.report import Report
from evaluation.wording import fmt, fmt_interval


def _units(report: Report) -> str:
    return "candidate requests" if report.mode is ComparisonMode.SPLIT else "pairs"


def _planned(planned_n: int | None) -> str:
    return "planned size not known yet" if planned_n is None else f"planned {planned_n:,}"


def _interval(m: MetricResult) -> str:
    if m.lower is None or m.upper is None:
        return "n/a"
    return fmt_interval(m.lower, m.upper, m.unit)


def _cost_lines(report: Report) -> list[str]:
    c = report.cost
    if c is None:
        return []
    lines = [
        f"per request: primary {fmt(c.primary_usd_per_request, 'usd')}, "
        f"candidate {fmt(c.candidate_usd_per_request, 'usd')} ({c.n:,} requests with tokens)",
        f"monthly at {c.requests_per_s:.3g} requests/s: primary "
        f"{fmt(c.primary_monthly_usd, 'usd')}, candidate {fmt(c.candidate_monthly_usd, 'usd')}, "
        f"savings {fmt(c.monthly_savings_usd, 'usd')} ({fmt(c.savings_share, 'share')})",
    ]
    if not math.isnan(c.break_even_requests_per_s):
        lines.append(
            f"self-hosting breaks even above {c.break_even_requests_per_s:.3g} requests/s; "
            f"one replica serves about {c.replica_capacity_requests_per_s:.3g} requests/s "
            f"({c.replicas_needed} needed now)"
        )
    lines.append(f"list prices as of {c.prices_as_of.isoformat()}")
    return lines


def _quality_lines(report: Report) -> list[str]:
    lines = []
    q = report.quality
    if q is not None:
        t, ni = q.tally, q.non_inferiority
        lines.append(
            f"wins {t.wins:,}, losses {t.losses:,}, ties {t.ties:,} "
            f"(tie rate {fmt(t.tie_rate, 'share')})"
        )
        lines.append(
            f"loses {fmt(ni.loss_share, 'share')} of non-tied judgments; exact "
            f"{ni.confidence:.0%} upper bound {fmt(ni.upper_bound, 'share')} vs limit "
            f"{fmt(ni.margin, 'share')}: {'non-inferior' if ni.non_inferior else 'not shown'}"
        )
    return lines


def _text_metric_lines(report: Report) -> list[str]:
    lines = [
        f"{t.name}: {t.mean:.3f} ({t.lower:.3f} to {t.upper:.3f}, n={t.n:,})"
        if t.n
        else f"{t.name}: does not apply to any sampled pair"
        for t in report.text_metrics
    ]
    for nf in report.noise:
        verdict = "indistinguishable" if nf.indistinguishable else "not shown indistinguishable"
        lines.append(
            f"noise floor ({nf.metric}): candidate {nf.mean_candidate:.3f} vs primary-again "
            f"{nf.mean_noise:.3f}; gap {nf.mean_gap:+.3f}, upper bound {nf.upper_bound:+.3f} "
            f"vs margin {nf.margin:.3f}: {verdict} from OpenAI's own variation (n={nf.n:,})"
        )
    return lines


def render_text(report: Report) -> str:
    v = report.verdict
    out = [
        f"Understudy report: {report.title}" + (f" ({report.stage})" if report.stage else ""),
        f"mode {report.mode}, {report.n:,} rows",
        "",
        f"DECISION: {v.decision.value.upper()} — {v.reason}",
        f"(promotion needs {v.min_samples:,} {_units(report)}; {_planned(v.planned_n)}; "
        f"alpha {v.alpha})",
        "",
        "Metrics:",
    ]
    for m in v.metrics:
        tag = " [guardrail]" if m.guardrail else ""
        out.append(f"  {m.label.value.upper():<12} {m.name}{tag}: {m.reason}")
    sections = [
        ("Latency and errors:", [f.text for f in report.findings]),
        ("Quality:", _quality_lines(report)),
        ("Text similarity (sample):", _text_metric_lines(report)),
        ("Cost:", _cost_lines(report)),
        ("Notes:", list(report.notes)),
    ]
    for title, lines in sections:
        if lines:
            out += ["", title] + [f"  {line}" for line in lines]
    return "\n".join(out) + "\n"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown(report: Report) -> str:
    v = report.verdict
    out = [
        f"# Understudy report: {report.title}",
        "",
        f"**Decision: {v.decision.value}** — {_md_cell(v.reason)}",
        "",
        f"Compared as {report.mode}, {report.n:,} rows. Promotion needs {v.min_samples:,} "
        f"{_units(report)}; {_planned(v.planned_n)}; alpha {v.alpha}.",
        "",
        "| metric | label | estimate | interval | limit | n | reason |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for m in v.metrics:
        name = f"{m.name} (guardrail)" if m.guardrail else m.name
        out.append(
            f"| {name} | {m.label.value} | {fmt(m.estimate, m.unit)} | {_interval(m)} | "
            f"{fmt(m.margin, m.unit)} | {m.n:,} | {_md_cell(m.reason)} |"
        )
    sections = [
        ("Latency and errors", [f.text for f in report.findings]),
        ("Quality", _quality_lines(report)),
        ("Text similarity (sample)", _text_metric_lines(report)),
        ("Cost", _cost_lines(report)),
        ("Notes", list(report.notes)),
    ]
    for title, lines in sections:
        if lines:
            out += ["", f"## {title}", ""] + [f"- {_md_cell(line)}" for line in lines]
    return "\n".join(out) + "\n"


def json_values(value: Any) -> Any:
    """JSON-safe values: enums by value, dates as ISO, NaN and infinities as null."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: json_values(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, tuple | list):
        return [json_values(v) for v in value]
    return value


def report_json(report: Report) -> dict[str, Any]:
    """The report as JSON values: what ``render_json`` prints, for an API to send."""
    values: dict[str, Any] = json_values(report)
    return values


def render_json(report: Report) -> str:
    return json.dumps(report_json(report), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
