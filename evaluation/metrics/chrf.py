"""chrF (character n-gram F-score) from sacrebleu, scaled to [0, 1]."""

from __future__ import annotations

from typing import ClassVar

from sacrebleu.metrics.chrf import CHRF

from core import Direction


class ChrF:
    name: ClassVar[str] = "chrf"
    direction: ClassVar[Direction] = Direction.HIGHER_IS_BETTER

    def __init__(self) -> None:
        self._chrf = CHRF()

    def score(self, candidate: str, reference: str) -> float:
        if not candidate and not reference:
            return 1.0
        return float(self._chrf.sentence_score(candidate, [reference]).score) / 100.0
