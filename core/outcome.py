"""Which answer of a pair was better: the one vocabulary for judges, reviews and reports."""

from __future__ import annotations

from enum import StrEnum


class PairOutcome(StrEnum):
    """The preferred answer of a candidate-vs-primary pair; stored as its value."""

    CANDIDATE = "candidate"
    PRIMARY = "primary"
    TIE = "tie"

    @property
    def code(self) -> int:
        """+1 candidate preferred, -1 primary preferred, 0 tie: what the statistics count."""
        return _CODES[self]


_CODES = {PairOutcome.CANDIDATE: 1, PairOutcome.PRIMARY: -1, PairOutcome.TIE: 0}
