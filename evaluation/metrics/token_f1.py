"""Token F1: harmonic mean of token precision and recall over the bag of normalised tokens."""

from __future__ import annotations

from collections import Counter
from typing import ClassVar

from core import Direction
from evaluation.metrics._text import tokens


class TokenF1:
    name: ClassVar[str] = "token_f1"
    direction: ClassVar[Direction] = Direction.HIGHER_IS_BETTER

    def score(self, candidate: str, reference: str) -> float:
        cand, ref = tokens(candidate), tokens(reference)
        if not cand or not ref:
            # Two empty answers agree; one empty answer shares nothing.
            return 1.0 if cand == ref else 0.0
        overlap = sum((Counter(cand) & Counter(ref)).values())
        if overlap == 0:
            return 0.0
        precision, recall = overlap / len(cand), overlap / len(ref)
        return 2 * precision * recall / (precision + recall)
