"""Per-pair text metrics: each against hand-checked values, plus the registry."""

from __future__ import annotations

import itertools
import json
import math
import random

import pytest

from core import ConfigError, Direction, ToolCall
from evaluation.metrics import METRIC_CLASSES, PairMetric, build_metrics
from evaluation.metrics.bleu import Bleu
from evaluation.metrics.chrf import ChrF
from evaluation.metrics.exact_match import ExactMatch
from evaluation.metrics.json_match import JsonEqual, JsonValid
from evaluation.metrics.length_ratio import LengthRatio, signed_length_ratio
from evaluation.metrics.refusal import Refusal, is_refusal
from evaluation.metrics.rouge_l import RougeL, lcs_length
from evaluation.metrics.scoring import score_pairs
from evaluation.metrics.token_f1 import TokenF1
from evaluation.metrics.tool_calls import ToolCallMatch, tool_calls_text


def test_every_registered_metric_builds_and_follows_the_interface() -> None:
    metrics = build_metrics(list(METRIC_CLASSES))
    assert [m.name for m in metrics] == list(METRIC_CLASSES)
    for metric in metrics:
        assert isinstance(metric, PairMetric)
        assert metric.direction in (Direction.HIGHER_IS_BETTER, Direction.LOWER_IS_BETTER)
        assert isinstance(metric.score("an answer", "an answer"), float)


def test_unknown_or_repeated_metric_names_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown metric 'bleurt'"):
        build_metrics(["token_f1", "bleurt"])
    with pytest.raises(ConfigError, match="twice"):
        build_metrics(["chrf", "chrf"])


def test_exact_match_normalises_case_punctuation_articles_and_spaces() -> None:
    m = ExactMatch()
    assert m.score("The  Eiffel Tower!", "eiffel tower") == 1.0
    assert m.score("Eiffel Tower", "Eiffel Towers") == 0.0
    assert m.score("", "") == 1.0


def test_token_f1_counts_overlapping_tokens() -> None:
    m = TokenF1()
    # cand tokens: [cat, sat, on, mat]; ref: [cat, sat]; overlap 2 -> P=0.5, R=1 -> F1=2/3
    assert m.score("The cat sat on the mat", "a cat sat") == pytest.approx(2 / 3)
    assert m.score("cat cat", "cat") == pytest.approx(2 * 0.5 * 1 / 1.5)
    assert m.score("dog", "cat") == 0.0
    assert m.score("", "cat") == 0.0
    assert m.score("", "") == 1.0


def _lcs_table(a: list[str], b: list[str]) -> int:
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, x in enumerate(a, 1):
        for j, y in enumerate(b, 1):
            table[i][j] = (
                table[i - 1][j - 1] + 1 if x == y else max(table[i - 1][j], table[i][j - 1])
            )
    return table[-1][-1]


def test_bit_parallel_lcs_matches_the_textbook_table() -> None:
    rng = random.Random(7)
    for _ in range(300):
        a = rng.choices("abcde", k=rng.randint(0, 40))
        b = rng.choices("abcde", k=rng.randint(0, 40))
        assert lcs_length(a, b) == _lcs_table(a, b)


def test_rouge_l_f1() -> None:
    m = RougeL()
    # LCS of [capital of france is paris] and [paris is capital of france] is 3.
    assert m.score("The capital of France is Paris", "Paris is the capital of France") == 0.6
    assert m.score("a b c", "a b c") == 1.0
    assert m.score("x y", "a b") == 0.0


def test_chrf_is_sacrebleu_scaled_to_unit_interval() -> None:
    import sacrebleu

    m = ChrF()
    cand, ref = "The quick brown fox", "A quick brown fox jumps"
    expected = sacrebleu.sentence_chrf(cand, [ref]).score / 100
    assert m.score(cand, ref) == pytest.approx(expected)
    assert m.score(ref, ref) == pytest.approx(1.0)
    assert 0.0 < m.score(cand, ref) < 1.0


def test_bleu_is_sentence_bleu_with_effective_order() -> None:
    m = Bleu()
    # Every 1-, 2- and 3-gram of the answer is in the reference (no 4-grams exist, so
    # effective order leaves them out); only the brevity penalty exp(1 - 6/3) remains.
    assert m.score("the cat sat", "the cat sat on the mat") == pytest.approx(math.exp(-1))
    assert m.score("the cat sat on the mat", "the cat sat on the mat") == pytest.approx(1.0)
    assert m.score("dogs bark loudly", "the cat sat on the mat") == 0.0
    assert m.score("", "") == 1.0
    assert m.score("", "something") == 0.0


def test_length_ratio_is_symmetric_shorter_over_longer() -> None:
    m = LengthRatio()
    assert m.score("one two", "one two three four") == 0.5
    assert m.score("one two three four", "one two") == 0.5
    assert m.score("", "") == 1.0
    assert signed_length_ratio("one two three four", "one two") == 2.0
    assert math.isnan(signed_length_ratio("x", ""))


def test_json_validity_applies_only_when_the_reference_is_json() -> None:
    m = JsonValid()
    assert m.score('{"a": 1}', '{"b": 2}') == 1.0
    assert m.score('```json\n{"a": 1}\n```', "[1]") == 1.0  # a fenced block is unwrapped
    assert m.score("{'a': 1}", '{"b": 2}') == 0.0
    assert m.score("[NaN]", "[1]") == 0.0  # not strict JSON
    assert math.isnan(m.score('{"a": 1}', "plain prose"))


def test_json_equality_ignores_key_order_and_number_spelling() -> None:
    m = JsonEqual()
    assert (
        m.score('{"b": [1, 2.50], "a": {"x": null}}', '{"a": {"x": null}, "b": [1.0, 2.5]}') == 1.0
    )
    assert m.score('{"n": 1e2}', '{"n": 100}') == 1.0
    assert m.score('{"a": [1, 2]}', '{"a": [2, 1]}') == 0.0  # arrays keep their order
    assert m.score('{"a": true}', '{"a": 1}') == 0.0  # true is not 1
    assert m.score('{"a": "1"}', '{"a": 1}') == 0.0
    assert m.score("not json", '{"a": 1}') == 0.0
    assert m.score('{"a": 12345678901234567890}', '{"a": 12345678901234567891}') == 0.0


def test_tool_call_equivalence() -> None:
    m = ToolCallMatch()
    ref = tool_calls_text([ToolCall("get_weather", '{"city": "Paris", "days": 1}', id="x")])
    same = tool_calls_text([ToolCall("get_weather", '{"days": 1.0, "city": "Paris"}', id="y")])
    other_args = tool_calls_text([ToolCall("get_weather", '{"city": "Lyon", "days": 1}')])
    other_name = tool_calls_text([ToolCall("get_forecast", '{"city": "Paris", "days": 1}')])
    assert m.score(same, ref) == 1.0
    assert m.score(other_args, ref) == 0.0
    assert m.score(other_name, ref) == 0.0
    assert m.score(tool_calls_text([]), ref) == 0.0
    assert math.isnan(m.score(tool_calls_text([]), tool_calls_text([])))
    assert m.score("Sure! The weather is nice.", ref) == 0.0


def test_parallel_tool_calls_compare_as_a_multiset() -> None:
    m = ToolCallMatch()
    a = ToolCall("f", '{"x": 1}')
    b = ToolCall("g", '{"y": 2}')
    assert m.score(tool_calls_text([b, a]), tool_calls_text([a, b])) == 1.0
    assert m.score(tool_calls_text([a, a]), tool_calls_text([a, b])) == 0.0
    # Arguments given as objects (not strings) are accepted too.
    as_objects = json.dumps([{"name": "f", "arguments": {"x": 1.0}}])
    assert m.score(as_objects, tool_calls_text([a])) == 1.0


def test_invalid_arguments_match_only_identical_text() -> None:
    m = ToolCallMatch()
    broken = tool_calls_text([ToolCall("f", "{x: 1")])
    assert m.score(broken, broken) == 1.0
    assert m.score(tool_calls_text([ToolCall("f", "{x:  1")]), broken) == 0.0


@pytest.mark.parametrize(
    "text",
    [
        "I'm sorry, but I can't help with that.",
        "I cannot assist with this request.",
        "I\u2019m unable to comply... I am unable to provide that.",
        "As an AI language model, I cannot browse the internet.",
        "I won't help with creating malware.",
    ],
)
def test_refusals_are_detected(text: str) -> None:
    assert is_refusal(text)


@pytest.mark.parametrize(
    "text",
    [
        "Paris is the capital of France.",
        "Sorry for the delay! Here is the code you asked for.",
        "You cannot divide by zero, so the function raises an error.",
    ],
)
def test_ordinary_answers_are_not_refusals(text: str) -> None:
    assert not is_refusal(text)


def test_refusal_metric_flags_only_new_refusals() -> None:
    m = Refusal()
    assert m.direction is Direction.LOWER_IS_BETTER
    assert m.score("I can't help with that.", "Paris.") == 1.0
    assert m.score("I can't help with that.", "I cannot assist with that.") == 0.0
    assert m.score("Paris.", "I can't help with that.") == 0.0


def test_score_pairs_returns_one_column_per_metric() -> None:
    metrics = build_metrics(["exact_match", "token_f1", "json_valid"])
    cands = ["Paris", "the cat", '{"a": 1}']
    refs = ["paris", "a dog", '{"a": 1}']
    columns = score_pairs(metrics, cands, refs)
    assert set(columns) == {"exact_match", "token_f1", "json_valid"}
    expected = [[m.score(c, r) for c, r in zip(cands, refs, strict=True)] for m in metrics]
    for metric, values in zip(metrics, expected, strict=True):
        got = columns[metric.name].tolist()
        for g, e in itertools.zip_longest(got, values):
            assert (math.isnan(g) and math.isnan(e)) or g == e
