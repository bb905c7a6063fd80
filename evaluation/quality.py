"""Quality from pairwise judgments (people or an LLM judge): tallies, non-inferiority, ratings.

Outcomes arrive as ``PairOutcome.code``: +1 the candidate's answer was preferred (a win
for the candidate), -1 the primary's (a loss), 0 a tie.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from core.outcome import PairOutcome

WIN, TIE, LOSS = PairOutcome.CANDIDATE.code, PairOutcome.TIE.code, PairOutcome.PRIMARY.code


@dataclass(frozen=True, slots=True)
class Tally:
    wins: int
    losses: int
    ties: int

    @property
    def total(self) -> int:
        return self.wins + self.losses + self.ties

    @property
    def decided(self) -> int:
        return self.wins + self.losses

    @property
    def tie_rate(self) -> float:
        return self.ties / self.total if self.total else math.nan

    @property
    def loss_share(self) -> float:
        """Losses among non-tied judgments."""
        return self.losses / self.decided if self.decided else math.nan


def tally(outcomes: NDArray[np.integer]) -> Tally:
    if np.any((outcomes < LOSS) | (outcomes > WIN)):
        raise ValueError("outcomes must be -1, 0 or +1")
    return Tally(
        wins=int(np.count_nonzero(outcomes == WIN)),
        losses=int(np.count_nonzero(outcomes == LOSS)),
        ties=int(np.count_nonzero(outcomes == TIE)),
    )


def clopper_pearson(k: int, n: int, alpha: float) -> tuple[float, float]:
    """Two one-sided exact bounds for a binomial proportion, each at level alpha."""
    if not 0 <= k <= n or n == 0:
        raise ValueError("need 0 <= k <= n and n > 0")
    lower = 0.0 if k == 0 else float(stats.beta.ppf(alpha, k, n - k + 1))
    upper = 1.0 if k == n else float(stats.beta.ppf(1 - alpha, k + 1, n - k))
    return lower, upper


@dataclass(frozen=True, slots=True)
class NonInferiority:
    """Does the candidate lose at most ``margin`` of non-tied judgments?"""

    tally: Tally
    margin: float
    loss_share: float
    upper_bound: float  # one-sided exact (Clopper–Pearson) bound at 1 - alpha
    non_inferior: bool
    confidence: float


def non_inferiority(result: Tally, margin: float = 0.55, alpha: float = 0.05) -> NonInferiority:
    """Fixed-sample exact test; monitoring uses the confidence sequence in ``evidence``."""
    if not 0.0 < margin < 1.0:
        raise ValueError("margin must be in (0, 1)")
    if result.decided == 0:
        return NonInferiority(result, margin, math.nan, 1.0, False, 1 - alpha)
    _, upper = clopper_pearson(result.losses, result.decided, alpha)
    return NonInferiority(result, margin, result.loss_share, upper, upper <= margin, 1 - alpha)


@dataclass(frozen=True, slots=True)
class Rating:
    name: str
    elo: float  # relative to the first system, on the Elo scale (400 * log10 odds)
    lower: float
    upper: float


def _fit_strengths(wins: NDArray[np.float64], games: NDArray[np.float64]) -> NDArray[np.float64]:
    """Bradley–Terry by Hunter's MM iterations, batched: wins/games have shape (..., S, S).

    wins[i, j] is i's score against j (ties as half a win each); games is symmetric.
    Returns log-strengths with system 0 fixed at 0.
    """
    total_wins = wins.sum(axis=-1)
    strengths = np.ones(wins.shape[:-1])
    for _ in range(10_000):
        pair_sum = strengths[..., :, None] + strengths[..., None, :]
        denom = (games / pair_sum).sum(axis=-1)
        updated = np.where(denom > 0, total_wins / np.where(denom > 0, denom, 1.0), strengths)
        updated = np.maximum(updated, 1e-12)
        updated /= updated[..., :1]
        if np.max(np.abs(np.log(updated) - np.log(strengths))) < 1e-10:
            strengths = updated
            break
        strengths = updated
    result: NDArray[np.float64] = np.log(strengths)
    return result


def bradley_terry(
    names: Sequence[str],
    counts: NDArray[np.integer],
    *,
    alpha: float = 0.05,
    replicates: int = 500,
    rng: np.random.Generator | None = None,
) -> tuple[Rating, ...]:
    """Ratings with bootstrap intervals from a (S, S, 3) array of pairwise tallies.

    ``counts[i, j] = (wins of i over j, losses of i to j, ties)`` for i < j; the
    lower triangle is ignored. Bootstrap redraws each pair's judgments.
    """
    s = len(names)
    if counts.shape != (s, s, 3) or s < 2:
        raise ValueError("counts must have shape (S, S, 3) with S >= 2 systems")
    gen = rng if rng is not None else np.random.default_rng(0)
    upper_pairs = [(i, j) for i in range(s) for j in range(i + 1, s) if counts[i, j].sum() > 0]
    if not upper_pairs:
        raise ValueError("no judgments")

    def scores(cells: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        # cells: (..., P, 3) -> win matrix and games matrix with shape (..., S, S)
        wins = np.zeros((*cells.shape[:-2], s, s))
        games = np.zeros_like(wins)
        for p, (i, j) in enumerate(upper_pairs):
            w, loss, t = cells[..., p, 0], cells[..., p, 1], cells[..., p, 2]
            wins[..., i, j] = w + 0.5 * t
            wins[..., j, i] = loss + 0.5 * t
            games[..., i, j] = games[..., j, i] = w + loss + t
        return wins, games

    observed = np.array([counts[i, j] for i, j in upper_pairs], dtype=np.float64)
    point = _fit_strengths(*scores(observed))
    boot = np.empty((replicates, len(upper_pairs), 3))
    for p, row in enumerate(observed):
        boot[:, p, :] = gen.multinomial(int(row.sum()), row / row.sum(), size=replicates)
    draws = _fit_strengths(*scores(boot))
    to_elo = 400.0 / math.log(10.0)
    lo, hi = np.quantile(draws, [alpha / 2, 1 - alpha / 2], axis=0)
    return tuple(
        Rating(names[k], float(point[k] * to_elo), float(lo[k] * to_elo), float(hi[k] * to_elo))
        for k in range(s)
    )
