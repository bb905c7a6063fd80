"""A ranking of the candidates and the primary from pairwise preferences (judge and people).

Every comparison is one request's candidate answer against the primary's: +1 the
candidate's was preferred, -1 the primary's, 0 a tie, which counts as half a win for
each. The ratings are Bradley–Terry strengths fitted by Hunter's MM iterations
(``quality.bradley_terry``, the one fit) on the Elo scale, the primary fixed at 0.
Intervals are percentile bootstrap intervals: each candidate's pairs are redrawn with
replacement ``draws`` times from a seeded generator.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from evaluation.quality import bradley_terry, tally

DRAWS = 1_000
LEVEL = 0.95
SEED = 0


@dataclass(frozen=True, slots=True)
class RankedSystem:
    """One player: a candidate, or the primary (the reference, rated 0)."""

    name: str
    rating: float  # Elo points above the primary; ±inf when it never lost or never won
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
    names = (primary, *rated)
    counts = np.zeros((len(names), len(names), 3), dtype=np.int64)
    for k, name in enumerate(rated, start=1):
        t = tallies[name]
        counts[0, k] = (t.losses, t.wins, t.ties)  # the primary's wins are the candidate's losses
    ratings = bradley_terry(
        names, counts, alpha=1.0 - level, replicates=draws, rng=np.random.default_rng(seed)
    )
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
    for rating, name in zip(ratings[1:], rated, strict=True):
        t = tallies[name]
        value, lower, upper = rating.elo, rating.lower, rating.upper
        # A candidate that never lost (or never won) and never tied has no finite fit:
        # the iterations stop at an arbitrary size, so say so instead.
        if t.losses == 0 and t.ties == 0:
            value = upper = math.inf
        elif t.wins == 0 and t.ties == 0:
            value = lower = -math.inf
        systems.append(RankedSystem(name, value, lower, upper, t.total, t.wins, t.losses, t.ties))
    systems.sort(key=lambda s: -s.rating)
    return Ranking(primary, tuple(systems), unrated, level, draws, seed)
