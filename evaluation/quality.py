"""Quality from pairwise judgments (people or an LLM judge): tallies and non-inferiority (ratings: evaluation.ranking).

Outcomes arrive as ``PairOutcome.code``: +1 the candidate's answer was preferred (a win
for the candidate), -1 the primary's (a loss), 0 a tie.
"""

from __future__ import annotations

import math
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
