"""Normalised exact match: 1.0 when both answers are the same after normalisation."""

from __future__ import annotations

from typing import ClassVar

from core import Direction
from evaluation.metrics._text import normalise


class ExactMatch:
    name: ClassVar[str] = "exact_match"
    direction: ClassVar[Direction] = Direction.HIGHER_IS_BETTER

    def score(self, candidate: str, reference: str) -> float:
        return 1.0 if normalise(candidate) == normalise(reference) else 0.0
