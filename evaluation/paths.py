"""Replay a verdict after every row of a stage, in one vectorised pass.

This is what "checked after every new pair" means in the simulations, and it
also answers "when would the rollout have decided?" for recorded data. It uses
the same evidence definitions and the same classify/combine rules as
``evaluate_stage``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from core import Decision
from evaluation.columns import VerdictInput
from evaluation.config import EvaluationConfig
from evaluation.decision_metrics import definition
from evaluation.verdict import DECISIONS, classify_codes, combine_codes, context


@dataclass(frozen=True, slots=True)
class DecisionPath:
    names: tuple[str, ...]
    labels: NDArray[np.int8]  # (metrics, rows): label code after each row
    decisions: NDArray[np.int8]  # (rows,): decision code after each row

    def first(self, decision: Decision) -> int | None:
        """The row count at which ``decision`` was first reached, if ever."""
        hits = np.flatnonzero(self.decisions == DECISIONS.index(decision))
        return int(hits[0]) + 1 if hits.size else None


def decision_path(data: VerdictInput, config: EvaluationConfig) -> DecisionPath:
    rows = data.n
    labels = np.empty((len(config.metrics), rows), dtype=np.int8)
    for i, spec in enumerate(config.metrics):
        metric = definition(spec.name, data.mode)
        if metric is None:
            raise ValueError(f"{spec.name} is not available in {data.mode} mode")
        path = metric.path(data, context(config, spec, plan=False))
        labels[i] = classify_codes(
            path.lower, path.upper, path.n, spec.margin, spec.harm_limit, spec.direction
        )
    decisions = combine_codes(
        labels,
        np.array([s.guardrail for s in config.metrics], dtype=np.bool_),
        np.array([s.required for s in config.metrics], dtype=np.bool_),
        data.units_per_row(),
        config.min_samples,
    )
    return DecisionPath(tuple(s.name for s in config.metrics), labels, decisions)
