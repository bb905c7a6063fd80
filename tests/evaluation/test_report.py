"""The report: built from columns and a text sample, rendered three ways."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from core import Decision, MetricLabel
from core.verdict import MetricName
from evaluation.columns import ComparisonMode
from evaluation.config import EvaluationConfig
from evaluation.cost import SelfHosted
from evaluation.render import render_json, render_markdown, render_text
from evaluation.report import CostInput, ReportInput, TextSample, build_report
from tests.evaluation.factories import good_judgments, shadow_input, split_input


def _texts(rows: np.ndarray, *, with_noise: bool) -> TextSample:
    rng = np.random.default_rng(0)
    words = np.array(
        ["paris", "is", "the", "capital", "of", "france", "and", "a", "city", "on", "the", "seine"]
    )
    primary = tuple(" ".join(rng.choice(words, 10)) for _ in rows)
    candidate = tuple(p if i % 3 else p + " indeed" for i, p in enumerate(primary))
    noise = tuple(p if i % 2 else None for i, p in enumerate(primary)) if with_noise else ()
    return TextSample(rows, candidate, primary, noise)


def _shadow_report_input(rows: int = 1500) -> ReportInput:
    data = shadow_input(rows, slowdown=0.9, judgments=good_judgments(400, rows))
    assert data.shadow is not None
    return ReportInput(
        primary="openai",
        candidate="llama",
        mode=ComparisonMode.SHADOW,
        shadow=data.shadow,
        judgments=data.judgments,
        texts=_texts(np.arange(0, rows, 5), with_noise=True),
        cost=CostInput("gpt-4o", "llama-3.1-70b", SelfHosted(2.0, 1500.0)),
        stage="shadow",
    )


def test_shadow_report_has_every_section() -> None:
    report = build_report(_shadow_report_input())
    assert report.title == "llama vs openai" and report.n == 1500
    assert {m.name for m in report.verdict.metrics} >= {"latency_total", "latency_p95", "quality"}
    names = [f.name for f in report.findings]
    assert "total latency: typical ratio" in names and "error rate difference" in names
    # Quantities the verdict decides on appear once, as its metrics, not again as findings.
    assert not any(n.startswith("SLO") or n == "total latency: p95 ratio" for n in names)
    assert "time to first token: p95 ratio" in names
    assert report.verdict.metric("slo_total_p95") is not None
    typical = next(f for f in report.findings if f.name == "total latency: typical ratio")
    assert typical.estimate == pytest.approx(0.9, abs=0.02)
    assert typical.lower is not None and typical.upper is not None
    assert typical.lower < typical.estimate < typical.upper
    assert report.quality is not None and report.quality.tally.total == 400
    assert {t.name for t in report.text_metrics} == set(EvaluationConfig().text_metrics)
    noise_metrics = {nf.metric for nf in report.noise}
    assert "chrf" in noise_metrics
    noise = report.verdict.metric("noise_gap")
    assert noise is not None and noise.n == 150  # every other sampled row has a noise answer
    assert report.cost is not None and report.cost.n == 1500
    assert report.cost.primary_usd_per_request > report.cost.candidate_usd_per_request


def test_the_quality_bound_shown_is_the_verdicts() -> None:
    report = build_report(_shadow_report_input())
    measured = report.verdict.metric("quality")
    assert report.quality is not None and measured is not None
    shown = report.quality.non_inferiority
    assert shown.upper_bound == measured.upper and shown.loss_share == measured.estimate
    assert shown.non_inferior is (measured.label is MetricLabel.PASS)
    assert shown.confidence == pytest.approx(0.95)


def test_renderers_show_the_decision_every_metric_and_its_reason() -> None:
    report = build_report(_shadow_report_input())
    text, markdown = render_text(report), render_markdown(report)
    decision = report.verdict.decision.value
    assert f"DECISION: {decision.upper()}" in text
    assert f"**Decision: {decision}**" in markdown
    for metric in report.verdict.metrics:
        assert metric.reason in text
        assert f"| {metric.name}" in markdown
    assert "list prices as of 2025-06-15" in text
    parsed = json.loads(render_json(report))
    assert parsed["verdict"]["decision"] == decision
    assert len(parsed["verdict"]["metrics"]) == len(report.verdict.metrics)
    assert parsed["cost"]["prices_as_of"] == "2025-06-15"
    assert parsed["mode"] == "shadow"


def test_split_report_uses_user_level_statistics() -> None:
    data = split_input(3000, slowdown=1.3)
    assert data.split is not None
    report = build_report(
        ReportInput(
            "openai", "llama", ComparisonMode.SPLIT, split=data.split, cost=CostInput("gpt-4o", "x")
        )
    )
    assert report.verdict.decision is Decision.ROLLBACK
    median = next(f for f in report.findings if f.name == "total latency: median ratio")
    assert median.lower is not None and median.lower > 1.1
    assert "users" in median.text
    assert any("split mode" in note for note in report.notes)
    assert report.cost is None


def test_missing_prices_are_reported() -> None:
    base = _shadow_report_input(600)
    report = build_report(
        ReportInput(
            base.primary,
            base.candidate,
            base.mode,
            shadow=base.shadow,
            cost=CostInput("gpt-5-preview", "llama"),
        )
    )
    assert report.quality is None
    assert report.cost is None and any("gpt-5-preview" in note for note in report.notes)
    assert "gpt-5-preview" in render_text(report)


def test_text_sample_is_capped() -> None:
    base = _shadow_report_input(800)
    config = EvaluationConfig(text_sample_cap=50)
    report = build_report(base, config)
    assert all(t.n <= 50 for t in report.text_metrics)
    assert any("first 50 sampled pairs" in note for note in report.notes)


@pytest.mark.parametrize("mode", [ComparisonMode.SHADOW, ComparisonMode.SPLIT])
def test_the_p95_ratio_is_shown_once_as_the_verdicts_metric_or_else_as_a_finding(
    mode: ComparisonMode,
) -> None:
    if mode is ComparisonMode.SHADOW:
        data = _shadow_report_input(600)
    else:
        split = split_input(3000, slowdown=1.3).split
        data = ReportInput("openai", "llama", mode, split=split)
    full = EvaluationConfig()
    without = replace(
        full, metrics=tuple(m for m in full.metrics if m.name is not MetricName.LATENCY_P95)
    )
    decided, undecided = build_report(data, full), build_report(data, without)
    assert decided.verdict.metric(MetricName.LATENCY_P95) is not None
    assert undecided.verdict.metric(MetricName.LATENCY_P95) is None
    shown = [f.name for f in decided.findings]
    assert "total latency: p95 ratio" not in shown
    assert "total latency: p95 ratio" in [f.name for f in undecided.findings]
    assert not any(n.startswith("SLO") for n in shown)
