"""``understudy report --replay RUN``: a replayed candidate against the primary's recorded answers.

Quality is the evaluation's text metrics on each pair (the recorded primary answer and
the replayed candidate answer), beside the primary's own run-to-run noise where it was
recorded. The replay's latencies are its own block: they were measured at another time,
under another load, so they are never set against the live primary's.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core import Role
from storage.database import Database
from storage.replay import ReplayRun, replay_pairs, replayed_run
from storage.replay_judgments import judge_tally, primary_answer
from understudy.commands.common import strict_json
from understudy.settings import Settings

PAIRS_PER_READ = 500


@dataclass(frozen=True, slots=True)
class QualityFigure:
    metric: str
    direction: str
    pairs: int
    mean: float
    low: float  # 95 % interval of the mean
    high: float
    noise_mean: float  # the primary against its own second answer; NaN where none recorded


@dataclass(frozen=True, slots=True)
class ReplayLatency:
    calls: int
    failed: int
    errors: dict[str, int]  # by error kind
    latency_p50_ms: float
    latency_p95_ms: float
    ttft_p50_ms: float
    ttft_p95_ms: float


@dataclass(frozen=True, slots=True)
class ReplayReport:
    run: ReplayRun
    latency: ReplayLatency
    compared: int  # pairs with both answers' text
    quality: list[QualityFigure] = field(default_factory=list)
    # Judge model -> outcome -> pairs (``understudy judge --replay RUN``).
    judged: dict[str, dict[str, int]] = field(default_factory=dict)


def _mean(values: Any) -> float:
    if values is None:
        return math.nan
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else math.nan


def _quantile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q * 100)) if values else math.nan


async def build_replay_report(db: Database, run_id: int, settings: Settings) -> ReplayReport:
    from evaluation.report import TextSample, _text_summaries

    run = await replayed_run(db, run_id)
    latencies: list[float] = []
    ttfts: list[float] = []
    errors: Counter[str] = Counter()
    candidate: list[str] = []
    primary: list[str] = []
    noise: list[str | None] = []
    calls = 0
    after = None
    while True:
        pairs = await replay_pairs(db, run_id, after=after, limit=PAIRS_PER_READ)
        if not pairs:
            break
        after = pairs[-1].original.id
        for pair in pairs:
            calls += 1
            replayed = pair.replayed
            if not replayed.ok:
                errors[replayed.error_kind.value if replayed.error_kind else "unknown"] += 1
                continue
            if replayed.latency_ms is not None:
                latencies.append(replayed.latency_ms)
            if replayed.ttft_ms is not None:
                ttfts.append(replayed.ttft_ms)
            recorded = primary_answer(pair.original)
            if recorded is None or not recorded.ok:
                continue
            if replayed.text is None or recorded.text is None:
                continue
            candidate.append(replayed.text)
            primary.append(recorded.text)
            second = pair.original.arm(Role.NOISE)
            noise.append(second.text if second is not None and second.ok else None)
    latency = ReplayLatency(
        calls=calls,
        failed=sum(errors.values()),
        errors=dict(sorted(errors.items())),
        latency_p50_ms=_quantile(latencies, 0.5),
        latency_p95_ms=_quantile(latencies, 0.95),
        ttft_p50_ms=_quantile(ttfts, 0.5),
        ttft_p95_ms=_quantile(ttfts, 0.95),
    )
    quality = []
    if candidate:
        sample = TextSample(
            np.arange(len(candidate), dtype=np.int64),
            tuple(candidate),
            tuple(primary),
            tuple(noise) if any(t is not None for t in noise) else (),
        )
        summaries, _, noise_scores = _text_summaries(sample, settings.evaluation.config())
        quality = [
            QualityFigure(
                s.name,
                s.direction.value,
                s.n,
                s.mean,
                s.lower,
                s.upper,
                _mean(noise_scores.get(s.name)),
            )
            for s in summaries
        ]
    return ReplayReport(run, latency, len(candidate), quality, await judge_tally(db, run_id))


def report_json(report: ReplayReport) -> dict[str, Any]:
    run = report.run
    return {
        "replay": {
            "run": run.id,
            "candidate": run.candidate,
            "target": run.target,
            "status": run.status,
            "selected": run.selected,
            "done": run.done,
            "skipped_no_prompt": run.skipped_no_prompt,
        },
        "latency": {
            "calls": report.latency.calls,
            "failed": report.latency.failed,
            "errors": report.latency.errors,
            "latency_ms": {
                "p50": report.latency.latency_p50_ms,
                "p95": report.latency.latency_p95_ms,
            },
            "ttft_ms": {"p50": report.latency.ttft_p50_ms, "p95": report.latency.ttft_p95_ms},
        },
        "quality": {
            "pairs": report.compared,
            "metrics": [
                {
                    "name": q.metric,
                    "direction": q.direction,
                    "n": q.pairs,
                    "mean": q.mean,
                    "low": q.low,
                    "high": q.high,
                    "primary_noise_mean": q.noise_mean,
                }
                for q in report.quality
            ],
            "judge": report.judged,
        },
    }


def _ms(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:,.1f} ms"


def _share(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3f}"


def report_text(report: ReplayReport) -> str:
    run, lat = report.run, report.latency
    errors = ", ".join(f"{kind} {n:,}" for kind, n in lat.errors.items()) or "none"
    lines = [
        f"Replay run {run.id}: {run.candidate} ({run.target}), {run.status}",
        f"  {run.done:,} of {run.selected:,} replayed; "
        f"{run.skipped_no_prompt:,} exchanges skipped, stored without prompts",
        "",
        "Replay latency (this run only; not comparable with live traffic)",
        f"  calls {lat.calls:,}, failed {lat.failed:,} ({errors})",
        f"  latency p50 {_ms(lat.latency_p50_ms)}, p95 {_ms(lat.latency_p95_ms)}",
        f"  time to first token p50 {_ms(lat.ttft_p50_ms)}, p95 {_ms(lat.ttft_p95_ms)}",
        "",
        f"Quality against the recorded primary answers ({report.compared:,} pairs)",
    ]
    for q in report.quality:
        lines.append(
            f"  {q.metric:<13} mean {_share(q.mean)} "
            f"[{_share(q.low)}, {_share(q.high)}]  n={q.pairs:,}  "
            f"primary vs itself {_share(q.noise_mean)}  ({q.direction.replace('_', ' ')})"
        )
    if not report.quality:
        lines.append("  no pair with both answers' text")
    for model, outcomes in report.judged.items():
        lines.append(
            f"  judge {model}: candidate better {outcomes['candidate']:,}, "
            f"primary better {outcomes['primary']:,}, ties {outcomes['tie']:,}"
        )
    if not report.judged:
        lines.append("  not judged yet: `understudy judge --replay RUN --model MODEL`")
    return "\n".join(lines) + "\n"


def render_replay(report: ReplayReport, form: str) -> str:
    if form == "json":
        return strict_json(report_json(report)) + "\n"
    return report_text(report)
