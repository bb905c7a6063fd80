"""Published reference values the statistics must reproduce."""

from __future__ import annotations

import numpy as np
import pytest

from evaluation.agreement import cohen_kappa
from evaluation.groupseq import obrien_fleming_bounds
from evaluation.quality import Tally, clopper_pearson, non_inferiority
from evaluation.ranking import rank_candidates


def test_obrien_fleming_bounds_five_looks_two_sided_005() -> None:
    bounds = obrien_fleming_bounds(0.05, (1.0, 2.0, 3.0, 4.0, 5.0), two_sided=True)
    assert np.round(bounds, 3).tolist() == [4.562, 3.226, 2.634, 2.281, 2.040]


def test_clopper_pearson_one_sided_upper_bound_118_of_240() -> None:
    _, upper = clopper_pearson(118, 240, alpha=0.05)
    assert round(upper, 4) == 0.5467
    result = non_inferiority(Tally(wins=122, losses=118, ties=0), margin=0.55, alpha=0.05)
    assert result.upper_bound == pytest.approx(upper)
    assert result.non_inferior  # 0.5467 <= 0.55


def test_cohen_kappa_judge_by_human_table() -> None:
    assert round(cohen_kappa([[50, 8, 7], [6, 40, 9], [4, 6, 20]]), 3) == 0.588


def test_bradley_terry_two_systems_gap_in_elo() -> None:
    # The candidate won 130, lost 110 and tied 60 against the primary: a score of 160 of
    # 300, so 400 * log10(160 / 140) = 23.2 Elo points above it.
    outcomes = np.array([1] * 130 + [-1] * 110 + [0] * 60)
    ranking = rank_candidates("a", {"b": outcomes}, draws=200)
    rated = {s.name: s.rating for s in ranking.systems}
    assert round(rated["b"] - rated["a"], 1) == 23.2
