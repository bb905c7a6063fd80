"""Small builders for verdict and report inputs."""

from __future__ import annotations

import numpy as np

from evaluation.columns import (
    ArmColumns,
    ComparisonMode,
    Series,
    ShadowColumns,
    SplitColumns,
    VerdictInput,
)


def arm(
    latency: np.ndarray, *, ttft_share: float = 0.3, failed: np.ndarray | None = None
) -> ArmColumns:
    n = latency.size
    return ArmColumns.build(
        latency_ms=latency,
        ttft_ms=latency * ttft_share,
        failed=np.zeros(n, dtype=bool) if failed is None else failed,
        prompt_tokens=np.full(n, 300.0),
        cached_tokens=np.zeros(n),
        completion_tokens=np.full(n, 200.0),
    )


def shadow_input(
    n: int,
    *,
    seed: int = 0,
    slowdown: float = 1.0,
    ttft_slowdown: float = 1.0,
    candidate_errors: float = 0.0,
    judgments: Series | None = None,
    noise_gaps: Series | None = None,
) -> VerdictInput:
    rng = np.random.default_rng(seed)
    base = 500.0 * np.exp(0.5 * rng.standard_normal(n))
    prim = base * np.exp(0.1 * rng.standard_normal(n))
    cand = slowdown * base * np.exp(0.1 * rng.standard_normal(n))
    columns = ShadowColumns(
        primary=arm(prim),
        candidate=arm(
            cand, ttft_share=0.3 * ttft_slowdown / slowdown, failed=rng.random(n) < candidate_errors
        ),
        time_s=np.arange(n, dtype=np.float64),
    )
    return VerdictInput(
        ComparisonMode.SHADOW,
        shadow=columns,
        judgments=judgments if judgments is not None else Series(),
        noise_gaps=noise_gaps if noise_gaps is not None else Series(),
    )


def split_input(
    n: int, *, seed: int = 0, slowdown: float = 1.0, users: int = 400, share: float = 0.5
) -> VerdictInput:
    rng = np.random.default_rng(seed)
    user = rng.integers(0, users, n)
    is_candidate = (user * 2654435761 % 1000) < share * 1000  # sticky per user
    user_effect = np.exp(0.2 * rng.standard_normal(users))[user]
    latency = 500.0 * user_effect * np.exp(0.4 * rng.standard_normal(n))
    latency = np.where(is_candidate, latency * slowdown, latency)
    served = arm(latency)
    return VerdictInput(
        ComparisonMode.SPLIT,
        split=SplitColumns(
            served, is_candidate, user.astype(np.int64), np.arange(n, dtype=np.float64)
        ),
    )


def good_judgments(n: int, rows: int, seed: int = 0) -> Series:
    """Candidate wins 45 %, loses 25 %, ties 30 % on ``n`` judged rows spread over ``rows``."""
    rng = np.random.default_rng(seed)
    judged = np.sort(rng.choice(rows, size=n, replace=False))
    outcomes = rng.choice([1, -1, 0], size=n, p=[0.45, 0.25, 0.30])
    return Series.build(outcomes, judged)
