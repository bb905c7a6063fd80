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


class ReviewOutcome(StrEnum):
    """What a reviewer said about a pair, in terms of the arms (the page only shows A and B)."""

    CANDIDATE = "candidate"
    PRIMARY = "primary"
    TIE = "tie"
    BOTH_BAD = "both_bad"
    SKIPPED = "skipped"

    @property
    def preference(self) -> PairOutcome | None:
        """The pair outcome this counts as: both bad prefers neither (a tie); a skip is none."""
        return _PREFERENCES[self]


_PREFERENCES = {
    ReviewOutcome.CANDIDATE: PairOutcome.CANDIDATE,
    ReviewOutcome.PRIMARY: PairOutcome.PRIMARY,
    ReviewOutcome.TIE: PairOutcome.TIE,
    ReviewOutcome.BOTH_BAD: PairOutcome.TIE,
    ReviewOutcome.SKIPPED: None,
}


class QualitySource(StrEnum):
    """Whose preference counts for a pair that both the LLM judge and people have rated."""

    REVIEWERS = "reviewers"
    JUDGE = "judge"
