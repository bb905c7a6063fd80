"""How well two raters agree beyond chance (for example the LLM judge against people)."""

from __future__ import annotations

from collections.abc import Sequence

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
