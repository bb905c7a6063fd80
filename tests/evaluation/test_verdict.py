"""The verdict pipeline: labels, decisions, reasons, and agreement with the replayed path."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core import ConfigError, Decision, Direction, MetricLabel, Verdict
from evaluation.columns import Series
from evaluation.config import DEFAULT_METRIC_SPECS, EvaluationConfig, MetricSpec
from evaluation.paths import decision_path
from evaluation.verdict import (
    CONTINUE,
    DECISIONS,
    ERROR,
    FAIL,
    HOLD,
    INCONCLUSIVE,
    LABELS,
    NO_DATA,
    PASS,
    PROMOTE,
    ROLLBACK,
    classify_codes,
    combine_codes,
    evaluate_stage,
)
from tests.evaluation.factories import good_judgments, shadow_input, split_input
from understudy.evaluation_settings import EvaluationSettings

LOWER, HIGHER = Direction.LOWER_IS_BETTER, Direction.HIGHER_IS_BETTER


@pytest.mark.parametrize(
    ("lower", "upper", "n", "direction", "expected"),
    [
        (0.9, 1.05, 10, LOWER, PASS),
        (1.11, 1.3, 10, LOWER, FAIL),
        (1.01, 1.08, 10, LOWER, FAIL),  # worse at all is harm, even inside the margin
        (1.0, 1.2, 10, LOWER, INCONCLUSIVE),  # touching the harm limit is not harm
        (0.95, 1.10, 10, LOWER, PASS),  # touching the margin still passes
        (math.nan, math.nan, 10, LOWER, INCONCLUSIVE),
        (0.9, 1.0, 0, LOWER, NO_DATA),
        (1.15, 1.3, 10, HIGHER, PASS),
        (0.9, 0.99, 10, HIGHER, FAIL),
        (0.95, 1.2, 10, HIGHER, INCONCLUSIVE),
    ],
)
def test_classify_interval_against_margin_and_harm_limit(
    lower: float, upper: float, n: int, direction: Direction, expected: int
) -> None:
    margin = 1.10 if direction is LOWER else 1.12
    code = classify_codes(
        np.array([lower]), np.array([upper]), np.array([n]), margin, 1.0, direction
    )
    assert code.tolist() == [expected]


def _combine(
    labels: list[int],
    *,
    guardrail: list[bool],
    required: list[bool] | None = None,
    n: int = 1000,
    min_samples: int = 500,
) -> int:
    m = len(labels)
    return int(
        combine_codes(
            np.array(labels, dtype=np.int8)[:, None],
            np.array(guardrail),
            np.array(required or [True] * m),
            np.array([n]),
            min_samples,
        )[0]
    )


def test_combine_rules() -> None:
    g = [True, False]
    assert _combine([PASS, PASS], guardrail=g) == PROMOTE
    assert _combine([PASS, PASS], guardrail=g, n=499) == CONTINUE  # below the minimum sample
    assert _combine([FAIL, PASS], guardrail=g) == ROLLBACK
    assert _combine([FAIL, ERROR], guardrail=g) == ROLLBACK  # a broken guardrail wins
    assert _combine([PASS, FAIL], guardrail=g) == HOLD  # non-guardrail failure: a person decides
    assert _combine([PASS, ERROR], guardrail=g) == HOLD
    assert _combine([INCONCLUSIVE, PASS], guardrail=g) == CONTINUE  # inconclusive is not fail
    assert _combine([INCONCLUSIVE, INCONCLUSIVE], guardrail=g) == CONTINUE  # never a final hold
    assert _combine([NO_DATA, PASS], guardrail=g) == CONTINUE
    assert _combine([NO_DATA, PASS], guardrail=g, required=[False, True]) == PROMOTE
    assert _combine([NO_DATA, NO_DATA], guardrail=g, required=[False, False]) == CONTINUE


def test_a_fast_reliable_candidate_is_promoted() -> None:
    rows = 4000
    data = shadow_input(rows, slowdown=0.8, judgments=good_judgments(1500, rows))
    verdict = evaluate_stage(data, EvaluationConfig())
    assert isinstance(verdict, Verdict)
    assert verdict.decision is Decision.PROMOTE, verdict.reason
    assert verdict.reason.startswith("promote:")
    labels = {m.name: m.label for m in verdict.metrics}
    assert labels["noise_gap"] is MetricLabel.NO_DATA  # optional and unmeasured
    assert all(label is MetricLabel.PASS for name, label in labels.items() if name != "noise_gap")
    total = verdict.metric("latency_total")
    assert total is not None and total.estimate is not None
    assert total.estimate == pytest.approx(0.8, abs=0.01)
    assert total.lower is not None and total.upper is not None
    assert total.lower < 0.8 < total.upper
    assert total.n == rows and total.unit == "ratio"
    assert "inside the limit of +10.0%" in total.reason


def test_a_slow_candidate_is_rolled_back_with_a_reason() -> None:
    # Before the p95's burn-in only the mean-type metrics can act.
    verdict = evaluate_stage(shadow_input(100, slowdown=1.5), EvaluationConfig())
    assert verdict.decision is Decision.ROLLBACK
    assert [m.name for m in verdict.failed_guardrails] == ["latency_total"]
    later = evaluate_stage(shadow_input(300, slowdown=1.5), EvaluationConfig())
    assert {m.name for m in later.failed_guardrails} == {"latency_total", "latency_p95"}
    total = verdict.metric("latency_total")
    assert total is not None and "beyond the harm limit of +0.0%" in total.reason
    assert "latency_total" in verdict.reason


def test_slower_but_inside_the_margin_is_rolled_back() -> None:
    """Rollback asks "worse at all", not "worse than the margin"."""
    verdict = evaluate_stage(shadow_input(1500, slowdown=1.05), EvaluationConfig())
    total = verdict.metric("latency_total")
    assert total is not None and total.upper is not None and total.upper < 1.10
    assert verdict.decision is Decision.ROLLBACK
    lenient = EvaluationSettings(harm_threshold=0.08).config()
    assert evaluate_stage(shadow_input(1500, slowdown=1.05), lenient).decision is not (
        Decision.ROLLBACK
    )


def test_early_data_continues_and_says_what_it_waits_for() -> None:
    verdict = evaluate_stage(shadow_input(100), EvaluationConfig())
    assert verdict.decision is Decision.CONTINUE
    p95 = verdict.metric("latency_p95")
    assert p95 is not None and p95.label is MetricLabel.INCONCLUSIVE
    assert p95.lower is None and "so far (100 pairs)" in p95.reason
    quality = verdict.metric("quality")
    assert quality is not None and quality.label is MetricLabel.NO_DATA
    assert "optional" in quality.reason
    # Optional metrics without data are named as such, not as what the decision waits on.
    waiting = verdict.reason.split(";")[0]
    assert "quality" not in waiting and "noise_gap" not in waiting
    assert "no data yet for optional quality, noise_gap" in verdict.reason
    assert verdict.n == 100 and verdict.min_samples == 500


def test_the_verdict_plans_the_stage_size_in_plain_words() -> None:
    rows = 600
    data = shadow_input(
        rows, candidate_errors=0.01, judgments=good_judgments(300, rows), seed=4
    )  # one pair per second
    verdict = evaluate_stage(data, EvaluationConfig())
    errors = verdict.metric("error_rate")
    assert errors is not None and errors.planned_n is not None
    assert verdict.planned_n is not None and verdict.planned_n > rows
    assert verdict.decision is Decision.CONTINUE
    more = verdict.planned_n - rows
    assert f"about {more:,} more pairs, ~{more / 60:,.0f} minutes at the current traffic" in (
        verdict.reason
    )
    assert f"about {errors.planned_n - rows:,} more pairs for 80% power" in errors.reason


def test_a_failed_non_guardrail_metric_holds() -> None:
    verdict = evaluate_stage(shadow_input(600, ttft_slowdown=2.0), EvaluationConfig())
    ttft = verdict.metric("latency_ttft")
    assert ttft is not None and ttft.label is MetricLabel.FAIL and not ttft.guardrail
    assert verdict.decision is Decision.HOLD
    assert "latency_ttft beyond margin" in verdict.reason


def test_a_metric_that_cannot_be_computed_is_an_error_and_holds() -> None:
    broken_gaps = Series.build([0.1, 2.5], [0, 1])  # similarity gaps must lie in [-1, 1]
    verdict = evaluate_stage(shadow_input(200, noise_gaps=broken_gaps), EvaluationConfig())
    noise = verdict.metric("noise_gap")
    assert noise is not None and noise.label is MetricLabel.ERROR
    assert "could not be computed" in noise.reason
    assert verdict.decision is Decision.HOLD


def test_guardrails_split_alpha_and_report_their_confidence() -> None:
    config = EvaluationConfig()
    verdict = evaluate_stage(shadow_input(800), config)
    guardrails = [m for m in verdict.metrics if m.guardrail]
    assert len(guardrails) == config.guardrail_count == 4
    # Harm end at alpha/4 (rollback: any guardrail), promotion end at the full alpha.
    assert all(m.confidence == pytest.approx(1 - 0.05 / 4 - 0.05) for m in guardrails)
    others = [m for m in verdict.metrics if not m.guardrail]
    assert all(m.confidence == pytest.approx(0.9) for m in others)


def test_the_replayed_path_agrees_with_the_verdict_at_every_row() -> None:
    rows = 760
    data = shadow_input(
        rows, seed=3, slowdown=1.04, candidate_errors=0.01, judgments=good_judgments(300, rows)
    )
    config = EvaluationConfig()
    path = decision_path(data, config)
    checked = sorted(
        {1, 2, 24, 25, 26, 29, 30, 31, *range(100, rows + 1, 37), 199, 200, 201, 699, 700, rows}
    )
    for n in checked:
        verdict = evaluate_stage(data.head(n), config)
        assert DECISIONS[path.decisions[n - 1]] is verdict.decision, n
        assert [LABELS[c] for c in path.labels[:, n - 1]] == [m.label for m in verdict.metrics], n


def test_split_mode_verdicts() -> None:
    config = EvaluationConfig()
    slow = evaluate_stage(split_input(4000, slowdown=1.5), config)
    assert slow.decision is Decision.ROLLBACK
    assert "latency_total" in [m.name for m in slow.failed_guardrails]
    same = evaluate_stage(split_input(4000, seed=1), config)
    assert same.decision is not Decision.ROLLBACK
    total = same.metric("latency_total")
    assert total is not None and total.lower is not None and total.upper is not None
    assert total.lower < 1.0 < total.upper
    assert same.planned_n is not None


def test_split_mode_counts_candidate_requests_for_looks_and_promotion() -> None:
    data = split_input(2000, seed=2, share=0.1)
    assert data.split is not None
    served = int(data.split.is_candidate.sum())
    assert served % 25 != 0
    verdict = evaluate_stage(data, EvaluationConfig())
    assert verdict.n == served
    total = verdict.metric("latency_total")
    looked = served // 25 * 25
    assert total is not None and f"as of the first {looked:,} candidate requests" in total.reason
    path = decision_path(data, EvaluationConfig())
    for n in (1, 500, 1000, 1500, 2000):
        assert (
            DECISIONS[path.decisions[n - 1]]
            is evaluate_stage(data.head(n), EvaluationConfig()).decision
        )
        expected = [m.label for m in evaluate_stage(data.head(n), EvaluationConfig()).metrics]
        assert [LABELS[c] for c in path.labels[:, n - 1]] == expected


def test_metrics_unknown_to_a_mode_become_errors() -> None:
    config = EvaluationConfig(metrics=(MetricSpec("latency_tpot", 1.1, LOWER),))
    verdict = evaluate_stage(split_input(300), config)
    assert verdict.metrics[0].label is MetricLabel.ERROR
    assert verdict.decision is Decision.HOLD


@pytest.mark.parametrize(
    ("changes", "setting"),
    [
        ({"alpha": 0.7}, "evaluation.alpha"),
        ({"metrics": (*DEFAULT_METRIC_SPECS, DEFAULT_METRIC_SPECS[0])}, "evaluation.metrics"),
        ({"metrics": (MetricSpec("latency_median", 1.1, LOWER),)}, "evaluation.metrics"),
        ({"look_every": 0}, "evaluation.look_every"),
        ({"power": 0.3}, "evaluation.power"),
        ({"text_metrics": ("bleurt",)}, "evaluation.text_metrics"),
        ({"text_metrics": ("token_f1",)}, "evaluation.noise_metric"),
    ],
)
def test_bad_configuration_names_the_setting(changes: dict[str, object], setting: str) -> None:
    with pytest.raises(ConfigError) as info:
        EvaluationConfig(**changes)  # type: ignore[arg-type]
    assert info.value.setting == setting
