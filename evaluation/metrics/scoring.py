"""Score a sample of text pairs with every enabled metric, into numpy columns."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from evaluation.metrics.base import PairMetric


def score_pairs(
    metrics: Sequence[PairMetric], candidates: Sequence[str], references: Sequence[str]
) -> dict[str, NDArray[np.float64]]:
    """One float column per metric name; NaN where a metric does not apply."""
    if len(candidates) != len(references):
        raise ValueError("candidates and references must be equally long")
    return {
        m.name: np.fromiter(
            (m.score(c, r) for c, r in zip(candidates, references, strict=True)),
            dtype=np.float64,
            count=len(candidates),
        )
        for m in metrics
    }
