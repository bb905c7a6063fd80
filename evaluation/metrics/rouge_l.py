"""ROUGE-L F1: longest common subsequence of normalised tokens."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from core import Direction
from evaluation.metrics._text import tokens


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence, bit-parallel (Allison–Dix, Hyyrö).

    Each token of ``b`` updates one integer whose bits stand for positions in
    ``a``, so long answers cost O(len(a) * len(b) / word size) instead of a
    Python-level table.
    """
    if not a or not b:
        return 0
    masks: dict[str, int] = {}
    for i, token in enumerate(a):
        masks[token] = masks.get(token, 0) | (1 << i)
    full = (1 << len(a)) - 1
    row = full
    for token in b:
        matches = row & masks.get(token, 0)
        row = ((row + matches) | (row - matches)) & full
    return len(a) - row.bit_count()


class RougeL:
    name: ClassVar[str] = "rouge_l"
    direction: ClassVar[Direction] = Direction.HIGHER_IS_BETTER

    def score(self, candidate: str, reference: str) -> float:
        cand, ref = tokens(candidate), tokens(reference)
        if not cand or not ref:
            return 1.0 if cand == ref else 0.0
        common = lcs_length(cand, ref)
        if common == 0:
            return 0.0
        precision, recall = common / len(cand), common / len(ref)
        return 2 * precision * recall / (precision + recall)
