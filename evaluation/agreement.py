"""How well two raters agree beyond chance (for example the LLM judge against people)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


def cohen_kappa(table: NDArray[np.integer] | Sequence[Sequence[int]]) -> float:
    """Cohen's kappa from a square confusion table (rows: rater A, columns: rater B)."""
    counts = np.asarray(table, dtype=np.float64)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or counts.shape[0] < 2:
        raise ValueError("need a square table with at least two categories")
    total = counts.sum()
    if total <= 0:
        raise ValueError("the table is empty")
    observed = np.trace(counts) / total
    expected = float(np.dot(counts.sum(axis=1), counts.sum(axis=0))) / total**2
    if expected == 1.0:
        return 1.0 if observed == 1.0 else 0.0
    return float((observed - expected) / (1.0 - expected))


def confusion_table(
    rater_a: Sequence[str], rater_b: Sequence[str], categories: Sequence[str]
) -> NDArray[np.int64]:
    """Count label pairs; labels outside ``categories`` are an error, not silently dropped."""
    if len(rater_a) != len(rater_b):
        raise ValueError("both raters must label the same items")
    index = {c: i for i, c in enumerate(categories)}
    table = np.zeros((len(categories), len(categories)), dtype=np.int64)
    for a, b in zip(rater_a, rater_b, strict=True):
        if a not in index or b not in index:
            raise ValueError(f"unknown label in pair ({a!r}, {b!r})")
        table[index[a], index[b]] += 1
    return table


PREFERENCE_LABELS = ("candidate", "primary", "tie")  # PairOutcome's values


@dataclass(frozen=True, slots=True)
class Agreement:
    """Agreement beyond chance between raters of the same pairs."""

    kappa: float  # NaN with nothing to compare
    observed: float  # share of compared label pairs that agree; NaN with none
    compared: int  # label pairs compared


def _agreement(table: NDArray[np.int64]) -> Agreement:
    total = int(table.sum())
    if total == 0:
        return Agreement(math.nan, math.nan, 0)
    return Agreement(cohen_kappa(table), float(np.trace(table)) / total, total)


def judge_vs_people(
    judge: Sequence[str], people: Sequence[str], categories: Sequence[str] = PREFERENCE_LABELS
) -> Agreement:
    """Cohen's kappa of the LLM judge against people's verdict on the same pairs."""
    return _agreement(confusion_table(judge, people, categories))


def between_reviewers(
    labels_per_pair: Sequence[Sequence[str]], categories: Sequence[str] = PREFERENCE_LABELS
) -> Agreement:
    """Agreement between people, each pair rated by any number of them.

    Every two reviewers of a pair make one comparison, entered both ways round, so the
    table is symmetric and kappa treats reviewers as interchangeable (Fleiss' view, for
    pairs with differing numbers of reviewers). Pairs with one reviewer compare nothing.
    """
    first: list[str] = []
    second: list[str] = []
    for labels in labels_per_pair:
        for i, a in enumerate(labels):
            for b in labels[i + 1 :]:
                first += [a, b]
                second += [b, a]
    table = confusion_table(first, second, categories)
    found = _agreement(table)
    return Agreement(found.kappa, found.observed, found.compared // 2)
