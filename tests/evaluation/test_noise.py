"""The noise floor: candidate-vs-primary similarity against primary-vs-primary."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from evaluation.noise import noise_floor, noise_gaps


def test_a_candidate_as_close_as_openai_itself_is_indistinguishable() -> None:
    rng = np.random.default_rng(1)
    s_pp = np.clip(0.8 + 0.1 * rng.standard_normal(400), 0, 1)
    s_cp = np.clip(s_pp - 0.01 + 0.05 * rng.standard_normal(400), 0, 1)
    result = noise_floor("chrf", s_cp, s_pp, margin=0.05)
    assert result.indistinguishable
    gaps = s_pp - s_cp
    assert result.p_value == pytest.approx(stats.ttest_1samp(gaps, 0.05, alternative="less").pvalue)


def test_a_clearly_worse_candidate_is_not() -> None:
    rng = np.random.default_rng(2)
    s_pp = np.clip(0.8 + 0.1 * rng.standard_normal(400), 0, 1)
    s_cp = np.clip(s_pp - 0.15 + 0.05 * rng.standard_normal(400), 0, 1)
    result = noise_floor("chrf", s_cp, s_pp, margin=0.05)
    assert not result.indistinguishable
    assert result.mean_gap > 0.1


def test_pairs_missing_a_similarity_are_dropped() -> None:
    gaps = noise_gaps(np.array([0.5, np.nan, 0.7]), np.array([0.6, 0.9, np.nan]))
    assert gaps.tolist() == pytest.approx([0.1])
