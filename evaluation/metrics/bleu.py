"""Sentence BLEU from sacrebleu with effective order, scaled to [0, 1].

Effective order drops the n-gram orders a short sentence cannot have (a
three-word answer has no 4-grams), so short answers are not scored 0 by
construction; this is sacrebleu's recommended setting for sentence-level BLEU.
"""

from __future__ import annotations

from typing import ClassVar

from sacrebleu.metrics.bleu import BLEU

from core import Direction


class Bleu:
    name: ClassVar[str] = "bleu"
    direction: ClassVar[Direction] = Direction.HIGHER_IS_BETTER

    def __init__(self) -> None:
        self._bleu = BLEU(effective_order=True)

    def score(self, candidate: str, reference: str) -> float:
        if not candidate and not reference:
            return 1.0
        return float(self._bleu.sentence_score(candidate, [reference]).score) / 100.0
