"""The current stage's verdict, metric by metric, in the words of ``understudy report``.

The report is the one the admin API's ``GET rollout/report`` sends (the controller's
own, built in its worker); this only lays its JSON out as the Markdown report's
table does, numbers worded by ``evaluation.wording``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from evaluation.wording import fmt, fmt_interval


@dataclass(frozen=True, slots=True)
class MetricRow:
    name: str
    guardrail: bool
    label: str  # as the text report prints it: PASS, FAIL, INCONCLUSIVE, ...
    estimate: str
    interval: str
    limit: str
    n: int
    reason: str


@dataclass(frozen=True, slots=True)
class VerdictView:
    status: str  # the report body's: ready, no_data, off_plan
    message: str | None
    stage: str | None
    candidate: str | None
    decision: str | None  # as the text report prints it: PROMOTE, CONTINUE, ...
    reason: str | None
    rows: tuple[MetricRow, ...]
    age_s: float | None


def _row(m: Mapping[str, Any]) -> MetricRow:
    unit = str(m["unit"])
    lower, upper = m.get("lower"), m.get("upper")
    return MetricRow(
        name=str(m["name"]),
        guardrail=bool(m["guardrail"]),
        label=str(m["label"]).upper(),
        estimate=fmt(m.get("estimate"), unit),
        interval="n/a" if lower is None or upper is None else fmt_interval(lower, upper, unit),
        limit=fmt(m.get("margin"), unit),
        n=int(m["n"]),
        reason=str(m["reason"]),
    )


def verdict_view(body: Mapping[str, Any]) -> VerdictView:
    """``body`` as ``GET rollout/report`` answers it."""
    report = body.get("report")
    verdict = report["verdict"] if report else None
    return VerdictView(
        status=str(body["status"]),
        message=body.get("message"),
        stage=body.get("stage"),
        candidate=body.get("candidate"),
        decision=str(verdict["decision"]).upper() if verdict else None,
        reason=verdict["reason"] if verdict else None,
        rows=tuple(_row(m) for m in verdict["metrics"]) if verdict else (),
        age_s=body.get("age_s"),
    )
