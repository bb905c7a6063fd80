"""A ranking of the candidates and the primary from pairwise preferences (judge and people).

Every comparison is one request's candidate answer against the primary's: +1 the
candidate's was preferred, -1 the primary's, 0 a tie, which counts as half a win for
each. The ratings are Bradley–Terry strengths on the Elo scale, the primary fixed at 0.
Every candidate meets only the primary, so the likelihood splits into one term per
candidate and the fit has a closed form: a candidate scoring ``s`` of ``n`` (ties as
half) is rated ``400 log10(s / (n - s))``, which is what Hunter's MM iterations
(``quality.bradley_terry``) converge to on these tallies. The closed form also says
when there is no finite fit (a score of ``n`` or 0), for the estimate and for every
bootstrap draw alike, where iterations would stop at an arbitrary size.

Intervals are percentile bootstrap intervals: each candidate's pairs are redrawn with
replacement ``draws`` times from a seeded generator, and the interval is taken on the
score share, then put on the Elo scale (a bound at a share of 1 or 0 is infinite). A
candidate that won (or lost) every pair, with no tie, redraws to the same pairs every
time, so its finite bound is the exact binomial (Clopper–Pearson) one instead.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from evaluation.quality import Tally, tally

DRAWS = 1_000
LEVEL = 0.95
SEED = 0


@dataclass(frozen=True, slots=True)
class RankedSystem:
    """One player: a candidate, or the primary (the reference, rated 0)."""

    name: str
    rating: float  # Elo points above the primary; ±inf when it never lost (won) nor tied
    lower: float  # the bootstrap interval at the ranking's level
    upper: float
    pairs: int  # judged pairs behind the rating (the primary: every candidate's)
    wins: int  # from this player's side: preferred over the other answer
    losses: int
    ties: int


@dataclass(frozen=True, slots=True)
class Ranking:
    primary: str
    systems: tuple[RankedSystem, ...]  # best first; empty when nothing was judged
    unrated: tuple[str, ...]  # candidates without a judged pair
    level: float
    draws: int
    seed: int


def rank_candidates(
    primary: str,
    outcomes: Mapping[str, ArrayLike],
    *,
    level: float = LEVEL,
    draws: int = DRAWS,
    seed: int = SEED,
) -> Ranking:
    """Rank the primary and every candidate with judged pairs.

    ``outcomes`` maps each candidate to its pairs' codes against the primary (+1, 0, -1).
    """
    if not 0.0 < level < 1.0 or draws < 1:
        raise ValueError("level must be in (0, 1) and draws at least 1")
    tallies = {name: tally(np.asarray(codes, dtype=np.int64)) for name, codes in outcomes.items()}
    rated = [name for name, t in tallies.items() if t.total]
    unrated = tuple(name for name in tallies if name not in rated)
    if not rated:
        return Ranking(primary, (), unrated, level, draws, seed)
    gen = np.random.default_rng(seed)
    everyone = [tallies[name] for name in rated]
    systems = [
        RankedSystem(
            primary,
            0.0,
            0.0,
            0.0,
            sum(t.total for t in everyone),
            sum(t.losses for t in everyone),
            sum(t.wins for t in everyone),
            sum(t.ties for t in everyone),
        )
    ]
    for name in rated:
        t = tallies[name]
        lower, upper = _interval(t, level, draws, gen)
        value = _elo(_share(t.wins, t.ties, t.total))
        systems.append(RankedSystem(name, value, lower, upper, t.total, t.wins, t.losses, t.ties))
    systems.sort(key=lambda s: -s.rating)
    return Ranking(primary, tuple(systems), unrated, level, draws, seed)


def _share(wins: float, ties: float, total: float) -> float:
    return (wins + 0.5 * ties) / total


def _elo(share: float) -> float:
    """Elo points above the primary for a score share; ±inf at 1 and 0."""
    if share >= 1.0:
        return math.inf
    if share <= 0.0:
        return -math.inf
    return 400.0 * math.log10(share / (1.0 - share))


def _interval(t: Tally, level: float, draws: int, gen: np.random.Generator) -> tuple[float, float]:
    """The percentile bootstrap interval of one candidate's rating: its pairs redrawn
    ``draws`` times (as (losses, wins, ties) from the primary's side, one multinomial
    draw per candidate in turn)."""
    counts = np.array([t.losses, t.wins, t.ties], dtype=np.float64)
    redrawn = gen.multinomial(t.total, counts / t.total, size=draws)
    shares = (redrawn[:, 1] + 0.5 * redrawn[:, 2]) / t.total
    low, high = np.quantile(shares, [(1.0 - level) / 2, (1.0 + level) / 2])
    # Every draw is the sample itself: the exact bound of k = n (or 0) of n instead.
    exact = ((1.0 - level) / 2) ** (1.0 / t.total)
    if t.wins == t.total:
        low = exact
    elif t.losses == t.total:
        high = 1.0 - exact
    return _elo(float(low)), _elo(float(high))
