"""Time the report pipeline on 1,000,000 synthetic shadow-mode exchanges held in memory.

Run from the repository root: ``python bench/report_bench.py [rows]``.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from evaluation.columns import ArmColumns, ComparisonMode, Series, ShadowColumns
from evaluation.cost import SelfHosted
from evaluation.render import render_json, render_markdown, render_text
from evaluation.report import CostInput, ReportInput, TextSample, build_report

WORDS = [
    "the",
    "a",
    "of",
    "to",
    "and",
    "in",
    "is",
    "it",
    "that",
    "for",
    "on",
    "with",
    "as",
    "was",
    "this",
    "be",
    "by",
    "are",
    "at",
    "from",
    "or",
    "an",
    "paris",
    "france",
    "city",
    "river",
    "museum",
    "capital",
    "tower",
    "night",
    "people",
    "year",
    "history",
    "art",
]


def _arm(rng: np.random.Generator, shared: np.ndarray, scale: float) -> ArmColumns:
    n = shared.size
    latency = 600.0 * scale * np.exp(shared + 0.1 * rng.standard_normal(n))
    completion = np.maximum(1, rng.poisson(250, n)).astype(np.float64)
    return ArmColumns.build(
        latency_ms=latency,
        ttft_ms=0.3 * latency * np.exp(0.2 * rng.standard_normal(n)),
        failed=rng.random(n) < 0.01,
        prompt_tokens=rng.integers(100, 2000, n).astype(np.float64),
        cached_tokens=np.zeros(n),
        completion_tokens=completion,
    )


def _sentence(rng: np.random.Generator) -> str:
    return " ".join(rng.choice(WORDS, int(rng.integers(20, 120))))


def build_input(rows: int, seed: int = 0) -> ReportInput:
    rng = np.random.default_rng(seed)
    shared = 0.5 * rng.standard_normal(rows)
    shadow = ShadowColumns(
        primary=_arm(rng, shared, 1.0),
        candidate=_arm(rng, shared, 0.97),
        time_s=1.7e9 + np.cumsum(rng.exponential(0.05, rows)),
    )
    judged = np.sort(rng.choice(rows, size=min(rows, 5000), replace=False))
    outcomes = rng.choice([-1, 0, 1], size=judged.size, p=[0.33, 0.3, 0.37])
    sampled = np.sort(rng.choice(rows, size=min(rows, 2000), replace=False))
    texts = TextSample(
        rows=sampled,
        candidate=tuple(_sentence(rng) for _ in sampled),
        primary=tuple(_sentence(rng) for _ in sampled),
        noise=tuple(_sentence(rng) if i % 4 == 0 else None for i in range(sampled.size)),
    )
    return ReportInput(
        primary="openai",
        candidate="self-hosted",
        mode=ComparisonMode.SHADOW,
        shadow=shadow,
        judgments=Series.build(outcomes, judged),
        texts=texts,
        cost=CostInput("gpt-4o", "llama-3.1-70b", SelfHosted(2.5, 2500.0, gpus=2)),
    )


def main() -> int:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    started = time.perf_counter()
    data = build_input(rows)
    built = time.perf_counter()
    report = build_report(data)
    reported = time.perf_counter()
    rendered = [render_text(report), render_markdown(report), render_json(report)]
    done = time.perf_counter()
    print(f"rows: {rows:,}")
    print(f"synthetic columns: {built - started:.2f} s")
    print(f"build_report:      {reported - built:.2f} s")
    print(f"render (3 forms):  {done - reported:.2f} s ({sum(len(r) for r in rendered):,} chars)")
    print(f"decision: {report.verdict.decision.value} - {report.verdict.reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
