"""Seeded synthetic traffic for the sequential simulations.

Latencies are log-normal with a shared per-request component (prompt and
answer length move both arms together) plus independent per-arm run-to-run
noise. The richer shapes (stragglers, rounding, drift) are in ``traffic.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from evaluation.columns import ArmColumns, ComparisonMode, Series, ShadowColumns, VerdictInput

SHARED_SD = 0.5  # log-sd of the per-request component
ARM_SD = 0.10  # log-sd of each arm's own run-to-run noise (about 10 %)
MEDIAN_TOTAL_MS = 600.0
TTFT_SHARE = 0.3  # TTFT is roughly this share of total latency, with its own noise


@dataclass(frozen=True)
class Scenario:
    slowdown: float = 1.0  # multiplies every candidate latency
    tail_threshold: float | None = None  # shared-component z above which the candidate slows
    tail_factor: float = 1.0  # multiplier for those requests
    error_primary: float = 0.01
    error_candidate: float = 0.01
    win: float = 0.35  # judgments: candidate win / loss probabilities, the rest ties
    loss: float = 0.35
    judged_share: float = 0.5  # share of pairs that receive a judgment


def shadow_run(n: int, scenario: Scenario, rng: np.random.Generator) -> VerdictInput:
    z = rng.standard_normal(n)
    base = MEDIAN_TOTAL_MS * np.exp(SHARED_SD * z)
    prim = base * np.exp(ARM_SD * rng.standard_normal(n))
    cand = base * np.exp(ARM_SD * rng.standard_normal(n)) * scenario.slowdown
    if scenario.tail_threshold is not None:
        cand = np.where(z > scenario.tail_threshold, cand * scenario.tail_factor, cand)
    ttft_noise = 0.2
    prim_ttft = TTFT_SHARE * prim * np.exp(ttft_noise * rng.standard_normal(n))
    cand_ttft = TTFT_SHARE * cand * np.exp(ttft_noise * rng.standard_normal(n))
    tokens = np.full(n, 200.0)
    primary = ArmColumns.build(
        prim, prim_ttft, rng.random(n) < scenario.error_primary, completion_tokens=tokens
    )
    candidate = ArmColumns.build(
        cand, cand_ttft, rng.random(n) < scenario.error_candidate, completion_tokens=tokens
    )
    judged = np.flatnonzero(rng.random(n) < scenario.judged_share)
    draws = rng.random(judged.size)
    outcomes = np.where(
        draws < scenario.win, 1, np.where(draws < scenario.win + scenario.loss, -1, 0)
    )
    return VerdictInput(
        ComparisonMode.SHADOW,
        shadow=ShadowColumns(primary, candidate, np.arange(n, dtype=np.float64)),
        judgments=Series.build(outcomes, judged),
    )


# The slowest 10 % of requests (shared component above its 90th percentile) are this much
# slower on the candidate; calibrated so the p95 ratio is +20 % and the median unchanged.
TAIL_THRESHOLD = 1.2816
TAIL_FACTOR = 1.2025


def tail_scenario() -> Scenario:
    return Scenario(tail_threshold=TAIL_THRESHOLD, tail_factor=TAIL_FACTOR)


def realised_quantile_ratio(
    scenario: Scenario, q: float, rng: np.random.Generator, n: int = 400_000
) -> float:
    data = shadow_run(n, scenario, rng)
    assert data.shadow is not None
    c: NDArray[np.float64] = data.shadow.candidate.latency_ms
    p: NDArray[np.float64] = data.shadow.primary.latency_ms
    return float(np.quantile(c, q) / np.quantile(p, q))
