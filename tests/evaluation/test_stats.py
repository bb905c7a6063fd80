"""Fixed-sample latency and error statistics, checked against brute force and scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from evaluation.resample import (
    cluster_bootstrap_quantiles,
    hd_quantile,
    kth_walsh_average,
    paired_bootstrap_log_quantile_ratio,
)
from evaluation.split_stats import compare_split_errors, compare_split_latency
from evaluation.stats import (
    compare_paired_errors,
    compare_paired_latency,
    hodges_lehmann,
    time_per_output_token,
)


def _walsh(x: np.ndarray) -> np.ndarray:
    i, j = np.triu_indices(x.size)
    return np.sort((x[i] + x[j]) / 2)


def test_kth_walsh_average_matches_the_full_list() -> None:
    rng = np.random.default_rng(1)
    x = np.sort(rng.standard_normal(157))
    walsh = _walsh(x)
    for k in (1, 2, 50, walsh.size // 2, walsh.size - 1, walsh.size):
        assert kth_walsh_average(x, k) == pytest.approx(walsh[k - 1], abs=1e-12)


def test_hodges_lehmann_is_the_median_of_walsh_averages() -> None:
    rng = np.random.default_rng(2)
    d = rng.standard_normal(200) + 0.3
    est, lo, hi, n = hodges_lehmann(d, 0.05, rng)
    assert n == 200
    assert est == pytest.approx(np.median(_walsh(d)), abs=1e-12)
    assert lo < est < hi


def test_paired_latency_finds_a_uniform_slowdown() -> None:
    rng = np.random.default_rng(3)
    base = np.exp(6.5 + 0.5 * rng.standard_normal(2000))
    primary = base * np.exp(0.1 * rng.standard_normal(2000))
    candidate = 1.2 * base * np.exp(0.1 * rng.standard_normal(2000))
    r = compare_paired_latency(candidate, primary, replicates=500, rng=rng)
    assert r.hl_lower < 1.2 < r.hl_upper
    assert r.p95_lower < 1.2 < r.p95_upper
    assert r.wilcoxon_p < 1e-10
    direct = stats.wilcoxon(np.log(candidate) - np.log(primary))
    assert r.wilcoxon_p == pytest.approx(direct.pvalue)


def test_paired_latency_drops_pairs_without_both_timings() -> None:
    rng = np.random.default_rng(4)
    primary = np.exp(rng.standard_normal(100) + 6)
    candidate = primary * 1.1
    candidate[:10] = np.nan
    primary[10:15] = 0.0
    r = compare_paired_latency(candidate, primary, replicates=100, rng=rng)
    assert r.n == 85
    assert r.hl_ratio == pytest.approx(1.1)


def test_tail_only_change_is_seen_by_the_p95_ratio_not_by_wilcoxon() -> None:
    rng = np.random.default_rng(5)
    n = 3000
    z = rng.standard_normal(n)
    base = np.exp(6.5 + 0.5 * z)
    primary = base * np.exp(0.1 * rng.standard_normal(n))
    candidate = base * np.exp(0.1 * rng.standard_normal(n))
    candidate[z > 1.28] *= 1.3  # only the slowest tenth gets slower
    r = compare_paired_latency(candidate, primary, replicates=400, rng=rng)
    assert r.p95_lower > 1.15
    assert r.hl_upper < 1.05  # the typical request is unchanged


def test_bootstrap_rescales_when_subsampling() -> None:
    """The m-out-of-n bootstrap spread matches the full bootstrap's."""
    rng = np.random.default_rng(6)
    x = np.exp(rng.standard_normal(40_000))
    y = x * np.exp(0.2 * rng.standard_normal(40_000))
    _, full = paired_bootstrap_log_quantile_ratio(y, x, 0.95, 200, rng, max_resample=40_000)
    _, sub = paired_bootstrap_log_quantile_ratio(y, x, 0.95, 200, rng, max_resample=5_000)
    assert np.std(sub) == pytest.approx(np.std(full), rel=0.25)


def test_harrell_davis_matches_scipy() -> None:
    from scipy.stats.mstats import hdquantiles

    x = np.random.default_rng(7).lognormal(size=333)
    assert hd_quantile(x, 0.95) == pytest.approx(float(hdquantiles(x, [0.95])[0]))


def test_time_per_output_token() -> None:
    tpot = time_per_output_token(
        np.array([1100.0, 500.0, 900.0, np.nan]),
        np.array([100.0, 100.0, 900.0, 50.0]),
        np.array([101.0, 1.0, 10.0, 20.0]),
    )
    assert tpot[0] == pytest.approx(10.0)
    assert np.isnan(tpot[1:]).all()  # one token, zero time, unknown latency


def test_mcnemar_uses_only_discordant_pairs() -> None:
    cand = np.array([True] * 9 + [False] * 91)
    prim = np.array([True] * 2 + [False] * 7 + [True] * 1 + [False] * 90)
    r = compare_paired_errors(cand, prim)
    assert (r.only_candidate_failed, r.only_primary_failed) == (7, 1)
    assert r.mcnemar_p == pytest.approx(stats.binomtest(7, 8, 0.5).pvalue)
    assert compare_paired_errors(prim, prim).mcnemar_p == 1.0


def test_split_errors_use_barnard_when_small_and_fisher_when_large() -> None:
    small = compare_split_errors(
        np.array([True] * 8 + [False] * 42), np.array([True] + [False] * 49)
    )
    assert small.test == "barnard"
    table = [[8, 42], [1, 49]]
    assert small.p_value == pytest.approx(stats.barnard_exact(table).pvalue)
    big = compare_split_errors(np.arange(10_000) % 50 == 0, np.arange(20_000) % 100 == 0)
    assert big.test == "fisher"
    assert big.p_value == pytest.approx(stats.fisher_exact([[200, 9800], [200, 19800]]).pvalue)


def test_cluster_bootstrap_is_wider_when_users_are_correlated() -> None:
    rng = np.random.default_rng(8)
    users = np.repeat(np.arange(100), 30)
    user_effect = np.repeat(rng.standard_normal(100), 30)
    values = np.exp(user_effect + 0.2 * rng.standard_normal(3000))
    clustered = cluster_bootstrap_quantiles(values, users, (0.5,), 300, rng)[:, 0]
    independent = cluster_bootstrap_quantiles(values, np.arange(3000), (0.5,), 300, rng)[:, 0]
    assert np.std(clustered) > 2 * np.std(independent)


def test_split_latency_ratio_of_quantiles() -> None:
    rng = np.random.default_rng(9)
    users = rng.integers(0, 500, 6000)
    is_cand = users % 5 == 0
    lat = np.exp(6 + 0.5 * rng.standard_normal(6000)) * np.where(is_cand, 1.25, 1.0)
    r = compare_split_latency(lat[is_cand], users[is_cand], lat[~is_cand], users[~is_cand], rng=rng)
    assert r.median_lower < 1.25 < r.median_upper
    assert r.users_candidate == np.unique(users[is_cand]).size
    assert r.mann_whitney_p < 1e-6
    assert math.isfinite(r.p95_ratio)
