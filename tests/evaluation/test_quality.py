"""Quality tallies, exact non-inferiority and Bradley–Terry ratings."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from evaluation.agreement import cohen_kappa, confusion_table
from evaluation.quality import Tally, clopper_pearson, non_inferiority, tally


def test_tally_and_tie_rate() -> None:
    t = tally(np.array([1, 1, -1, 0, 0, 0, 1]))
    assert (t.wins, t.losses, t.ties) == (3, 1, 3)
    assert t.tie_rate == pytest.approx(3 / 7)
    assert t.loss_share == pytest.approx(1 / 4)
    with pytest.raises(ValueError):
        tally(np.array([2]))


def test_clopper_pearson_bounds_match_the_beta_quantiles() -> None:
    lo, hi = clopper_pearson(7, 20, 0.025)
    assert lo == pytest.approx(stats.beta.ppf(0.025, 7, 14))
    assert hi == pytest.approx(stats.beta.ppf(0.975, 8, 13))
    assert clopper_pearson(0, 10, 0.05)[0] == 0.0
    assert clopper_pearson(10, 10, 0.05)[1] == 1.0


def test_non_inferiority_is_decided_on_non_tied_judgments() -> None:
    good = non_inferiority(Tally(wins=300, losses=250, ties=400), margin=0.55)
    assert good.non_inferior and good.upper_bound < 0.55
    bad = non_inferiority(Tally(wins=100, losses=140, ties=0), margin=0.55)
    assert not bad.non_inferior
    empty = non_inferiority(Tally(0, 0, 5))
    assert not empty.non_inferior


def test_kappa_edge_cases_and_labels() -> None:
    assert cohen_kappa([[10, 0], [0, 10]]) == 1.0
    assert cohen_kappa([[5, 5], [5, 5]]) == 0.0
    table = confusion_table(["win", "tie", "win"], ["win", "loss", "tie"], ["win", "tie", "loss"])
    assert table.tolist() == [[1, 1, 0], [0, 0, 1], [0, 0, 0]]
    with pytest.raises(ValueError):
        confusion_table(["win"], ["draw"], ["win", "tie", "loss"])
