"""What a verdict compares: the comparison mode and one stage's columns.

The columns themselves are ``core.columns``: storage fills them from SQL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from core.columns import ArmColumns, IntArray, Series, ShadowColumns, SplitColumns

__all__ = [
    "ArmColumns",
    "ComparisonMode",
    "Series",
    "ShadowColumns",
    "SplitColumns",
    "VerdictInput",
]


class ComparisonMode(StrEnum):
    """How the two arms are compared; not the rollout's mode, which says who serves."""

    SHADOW = "shadow"  # both arms answered every request: rows are pairs
    SPLIT = "split"  # each user is served by one arm: rows are single exchanges


@dataclass(frozen=True, slots=True)
class VerdictInput:
    """Everything a verdict looks at for one stage. ``n`` counts rows of the comparison."""

    mode: ComparisonMode
    shadow: ShadowColumns | None = None
    split: SplitColumns | None = None
    # +1 win / -1 loss / 0 tie, from the candidate's side
    judgments: Series = field(default_factory=Series)
    # s_pp - s_cp for each exchange that has a second primary answer
    noise_gaps: Series = field(default_factory=Series)

    def __post_init__(self) -> None:
        if (self.mode is ComparisonMode.SHADOW) != (self.shadow is not None) or (
            self.mode is ComparisonMode.SPLIT
        ) != (self.split is not None):
            raise ValueError("give exactly the columns that match the mode")

    @property
    def n(self) -> int:
        """Rows of the comparison."""
        if self.shadow is not None:
            return len(self.shadow)
        assert self.split is not None
        return len(self.split)

    def units_per_row(self) -> IntArray:
        """Sample-size units seen after each row: pairs in shadow mode, candidate-served
        exchanges in split mode (at a 5 % split the candidate arm is what limits power).
        """
        if self.split is not None:
            return np.cumsum(self.split.is_candidate, dtype=np.int64)
        return np.arange(1, self.n + 1, dtype=np.int64)

    @property
    def units(self) -> int:
        if self.split is not None:
            return int(np.count_nonzero(self.split.is_candidate))
        return self.n

    @property
    def unit_noun(self) -> str:
        return "candidate requests" if self.mode is ComparisonMode.SPLIT else "pairs"

    def head_units(self, units: int) -> VerdictInput:
        """The data up to the row that brought the ``units``-th unit."""
        if self.split is None:
            return self.head(units)
        positions = np.flatnonzero(self.split.is_candidate)
        if units <= 0:
            return self.head(0)
        return self.head(int(positions[min(units, positions.size) - 1]) + 1)

    def head(self, n: int) -> VerdictInput:
        return VerdictInput(
            self.mode,
            None if self.shadow is None else self.shadow.head(n),
            None if self.split is None else self.split.head(n),
            self.judgments.head(n),
            self.noise_gaps.head(n),
        )
