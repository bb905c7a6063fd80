"""Seeded synthetic shadow traffic with the shapes real traffic has.

Every pair shares a per-request size (prompt and answer length), so both arms
move together; each arm adds its own run-to-run noise. A ``Shape`` switches on
the awkward parts one at a time: Pareto stragglers, latencies rounded to
10 ms, drift of both arms over the stage, rare errors, many judge ties. An
``Effect`` is what the candidate does differently.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from evaluation.columns import ArmColumns, ComparisonMode, Series, ShadowColumns, VerdictInput

FloatArray = NDArray[np.float64]

MEDIAN_MS = 600.0
SIZE_SD = 0.5  # log-sd of the shared per-request size
ARM_SD = 0.12  # log-sd of each arm's own noise
TTFT_SHARE = 0.3


@dataclass(frozen=True)
class Shape:
    name: str
    stragglers: float = 0.0  # share of requests per arm hit by a Pareto straggler
    straggler_tail: float = 1.5  # Pareto index: smaller is heavier
    round_ms: float = 0.0  # latencies reported in steps of this many ms
    drift: float = 0.0  # both arms slow by this factor from first to last pair, with a daily wave
    shared_errors: float = 0.005  # requests that fail on both arms (bad input, context too long)
    own_errors: float = 0.005  # each arm's own failures
    ties: float = 0.2  # judge ties among judged pairs
    judged: float = 1.0  # share of pairs judged


SHAPES: tuple[Shape, ...] = (
    Shape("lognormal"),
    Shape("pareto_stragglers", stragglers=0.03, straggler_tail=1.2),
    Shape("rounded_10ms", round_ms=10.0),
    Shape("drift", drift=0.25),
    Shape("rare_errors", shared_errors=0.0005, own_errors=0.0005),
    Shape("judge_ties", ties=0.6),
)
HEAVY = Shape("heavy", stragglers=0.03, straggler_tail=1.2, round_ms=10.0, drift=0.25)


@dataclass(frozen=True)
class Effect:
    speed: float = 1.0  # multiplies every candidate latency
    own_errors: float | None = None  # the candidate's own failure rate (None: as the shape's)
    primary_own_errors: float | None = None
    loss: float = 0.5  # share of non-tied judgments the candidate loses


def _latency(
    size: FloatArray, shape: Shape, n: int, rng: np.random.Generator, trend: FloatArray
) -> FloatArray:
    values = size * trend * np.exp(ARM_SD * rng.standard_normal(n))
    if shape.stragglers:
        hit = rng.random(n) < shape.stragglers
        values = np.where(hit, values * (1.0 + rng.pareto(shape.straggler_tail, n)), values)
    return values


def _rounded(values: FloatArray, step: float) -> FloatArray:
    if not step:
        return values
    result: FloatArray = np.maximum(np.round(values / step) * step, step)
    return result


def traffic(n: int, shape: Shape, effect: Effect, rng: np.random.Generator) -> VerdictInput:
    """``n`` pairs, one per second, with judgments on a share of them."""
    size = MEDIAN_MS * np.exp(SIZE_SD * rng.standard_normal(n))
    position = np.arange(n) / max(n - 1, 1)
    trend = (1.0 + shape.drift * position) * (1.0 + 0.2 * shape.drift * np.sin(6 * position))
    prim = _latency(size, shape, n, rng, trend)
    cand = _latency(size, shape, n, rng, trend) * effect.speed
    shared = rng.random(n) < shape.shared_errors
    p_own = shape.own_errors if effect.primary_own_errors is None else effect.primary_own_errors
    c_own = shape.own_errors if effect.own_errors is None else effect.own_errors
    prim_failed = shared | (rng.random(n) < p_own)
    cand_failed = shared | (rng.random(n) < c_own)
    ttft = np.exp(0.2 * rng.standard_normal((2, n))) * TTFT_SHARE
    tokens = np.full(n, 200.0)
    primary = ArmColumns.build(
        _rounded(prim, shape.round_ms),
        _rounded(prim * ttft[0], shape.round_ms),
        prim_failed,
        completion_tokens=tokens,
    )
    candidate = ArmColumns.build(
        _rounded(cand, shape.round_ms),
        _rounded(cand * ttft[1], shape.round_ms),
        cand_failed,
        completion_tokens=tokens,
    )
    judged = np.flatnonzero((rng.random(n) < shape.judged) & ~prim_failed & ~cand_failed)
    draws = rng.random(judged.size)
    decided = 1.0 - shape.ties
    outcomes = np.where(draws < decided * effect.loss, -1, np.where(draws < decided, 1, 0)).astype(
        np.float64
    )
    return VerdictInput(
        ComparisonMode.SHADOW,
        shadow=ShadowColumns(primary, candidate, np.arange(n, dtype=np.float64)),
        judgments=Series.build(outcomes, judged),
    )
