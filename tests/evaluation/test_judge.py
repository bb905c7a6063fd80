"""The pairwise judge against a real OpenAI-compatible HTTP server (no SDK mocks)."""

from __future__ import annotations

import math

import pytest

from core.outcome import PairOutcome
from evaluation.cost import ModelPrice
from evaluation.judge import (
    PROMPT_VERSION,
    JudgeBudget,
    JudgeConfig,
    JudgePair,
    JudgeResult,
    PairwiseJudge,
    combine_orders,
    judge_human_kappa,
    parse_choice,
)
from tests.evaluation.judge_server import JudgeBehaviour, running_judge

PARIS = "The capital of France is Paris."
LYON = "The capital of France is Lyon."
ROME = "I think it is Rome."


def _config(base_url: str, **overrides: object) -> JudgeConfig:
    settings: dict[str, object] = {
        "base_url": base_url,
        "model": "judge-model-1",
        "api_key": "test-key",
        "max_retries": 0,
        "timeout_s": 10.0,
    }
    settings.update(overrides)
    return JudgeConfig(**settings)  # type: ignore[arg-type]


def _pairs() -> list[JudgePair]:
    question = "What is the capital of France?"
    return [
        JudgePair("win", question, candidate=PARIS, primary=LYON),
        JudgePair("loss", question, candidate=ROME, primary=PARIS),
        JudgePair("tie", question, candidate=LYON, primary=ROME),
    ]


async def test_both_orders_judged_and_verdicts_follow_the_preferred_answer() -> None:
    behaviour = JudgeBehaviour(preferred_word="Paris")
    async with running_judge(behaviour) as url:
        judge = PairwiseJudge(_config(url))
        run = await judge.judge(_pairs())
        await judge.aclose()

    outcomes = {r.pair_id: r.outcome for r in run.results}
    assert outcomes == {
        "win": PairOutcome.CANDIDATE,
        "loss": PairOutcome.PRIMARY,
        "tie": PairOutcome.TIE,
    }
    assert all(r.consistent for r in run.results)
    assert all(r.judge_model == "judge-model-1" for r in run.results)
    assert all(r.prompt_version == PROMPT_VERSION for r in run.results)
    assert run.requests == 6 and len(behaviour.requests) == 6
    assert run.skipped == 0
    # The first request shows the candidate as answer A, the second as answer B.
    contents = [req["messages"][-1]["content"] for req in behaviour.requests]
    win_requests = [c for c in contents if LYON in c and PARIS in c]
    assert len(win_requests) == 2
    assert {c.index(PARIS) < c.index(LYON) for c in win_requests} == {True, False}
    assert all(req["temperature"] == 0.0 for req in behaviour.requests)
    assert run.outcomes().tolist() == [1, -1, 0]


async def test_a_position_biased_judge_yields_only_ties() -> None:
    behaviour = JudgeBehaviour(always="A")
    async with running_judge(behaviour) as url:
        judge = PairwiseJudge(_config(url))
        run = await judge.judge(_pairs())
        await judge.aclose()
    assert [r.outcome for r in run.results] == [PairOutcome.TIE] * 3
    assert not any(r.consistent for r in run.results)
    assert all(r.candidate_first == "A" and r.candidate_second == "A" for r in run.results)


async def test_request_budget_stops_judging_and_counts_skipped_pairs() -> None:
    behaviour = JudgeBehaviour()
    pairs = _pairs() * 3
    async with running_judge(behaviour) as url:
        judge = PairwiseJudge(_config(url, budget=JudgeBudget(max_requests=5, max_usd=100.0)))
        run = await judge.judge(pairs)
        await judge.aclose()
    assert len(run.results) == 2  # two pairs need four requests; a third would need six
    assert run.skipped == len(pairs) - 2
    assert run.requests == 4 == len(behaviour.requests)


async def test_dollar_budget_uses_the_price_and_actual_usage() -> None:
    behaviour = JudgeBehaviour()
    price = ModelPrice(input=1000.0, cached_input=0.0, output=1000.0)  # $0.001 per token
    pairs = _pairs() * 4
    async with running_judge(behaviour) as url:
        judge = PairwiseJudge(_config(url, price=price, budget=JudgeBudget(10_000, max_usd=1.5)))
        run = await judge.judge(pairs)
        await judge.aclose()
    assert 0 < len(run.results) < len(pairs)
    assert run.skipped == len(pairs) - len(run.results)
    assert run.spent_usd <= 1.5
    # The server bills len(prompt)//4 + 1 tokens per request: check the sum matches.
    billed = sum(
        (sum(len(m["content"]) for m in req["messages"]) // 4 + 1) * 0.001
        for req in behaviour.requests
    )
    assert math.isclose(run.spent_usd, billed, rel_tol=1e-9)
    assert math.isclose(sum(r.cost_usd for r in run.results), billed, rel_tol=1e-9)


async def test_judge_failures_become_error_results_not_exceptions() -> None:
    behaviour = JudgeBehaviour(fail_status=500)
    async with running_judge(behaviour) as url:
        judge = PairwiseJudge(_config(url))
        run = await judge.judge(_pairs()[:1])
        await judge.aclose()
    (result,) = run.results
    assert result.outcome is None
    assert result.error is not None and "InternalServerError" in result.error
    assert run.outcomes().size == 0


async def test_unreadable_replies_are_errors() -> None:
    behaviour = JudgeBehaviour(always="Both answers have merit.")
    async with running_judge(behaviour) as url:
        judge = PairwiseJudge(_config(url))
        run = await judge.judge(_pairs()[:1])
        await judge.aclose()
    assert run.results[0].outcome is None
    assert run.results[0].error == "judge reply was not A, B or TIE"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A", "A"),
        (" b.", "B"),
        ("TIE", "TIE"),
        ("tie - both fine", "TIE"),
        ("Answer", None),
        (None, None),
    ],
)
def test_parse_choice(text: str | None, expected: str | None) -> None:
    assert parse_choice(text) == expected


def test_outcomes_map_to_codes_and_stored_values() -> None:
    assert [o.code for o in PairOutcome] == [1, -1, 0]
    assert [o.value for o in PairOutcome] == ["candidate", "primary", "tie"]


def test_orders_must_agree() -> None:
    assert combine_orders("A", "B") == (PairOutcome.CANDIDATE, True)
    assert combine_orders("B", "A") == (PairOutcome.PRIMARY, True)
    assert combine_orders("TIE", "TIE") == (PairOutcome.TIE, True)
    assert combine_orders("A", "A") == (PairOutcome.TIE, False)
    assert combine_orders("A", "TIE") == (PairOutcome.TIE, False)


def test_kappa_between_judge_and_people() -> None:
    def result(pair_id: str, outcome: PairOutcome | None) -> JudgeResult:
        return JudgeResult(pair_id, outcome, None, None, True, "m", PROMPT_VERSION, 0.0)

    judged = [
        result("1", PairOutcome.CANDIDATE),
        result("2", PairOutcome.CANDIDATE),
        result("3", PairOutcome.PRIMARY),
        result("4", PairOutcome.TIE),
        result("5", None),  # the judge failed
    ]
    human = {
        "1": PairOutcome.CANDIDATE,
        "2": PairOutcome.PRIMARY,
        "3": PairOutcome.PRIMARY,
        "4": PairOutcome.TIE,
        "5": PairOutcome.CANDIDATE,
    }
    kappa, n = judge_human_kappa(judged, human)
    # Table over candidate/primary/tie: po = 3/4; pe = (2*1 + 1*1 + 1*2)/16 = 5/16.
    assert n == 4
    assert kappa == pytest.approx((0.75 - 5 / 16) / (1 - 5 / 16))
