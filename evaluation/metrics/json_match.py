"""JSON metrics: does the candidate parse, and is it structurally equal to the reference?

Both apply only where the reference itself is JSON (NaN otherwise), so plain
prose answers do not dilute the rates.
"""

from __future__ import annotations

from typing import ClassVar

from core import Direction
from evaluation.metrics._json import canonical, parse_json


class JsonValid:
    name: ClassVar[str] = "json_valid"
    direction: ClassVar[Direction] = Direction.HIGHER_IS_BETTER

    def score(self, candidate: str, reference: str) -> float:
        if not parse_json(reference)[0]:
            return float("nan")
        return 1.0 if parse_json(candidate)[0] else 0.0


class JsonEqual:
    name: ClassVar[str] = "json_equal"
    direction: ClassVar[Direction] = Direction.HIGHER_IS_BETTER

    def score(self, candidate: str, reference: str) -> float:
        ref_ok, ref = parse_json(reference)
        if not ref_ok:
            return float("nan")
        cand_ok, cand = parse_json(candidate)
        return 1.0 if cand_ok and canonical(cand) == canonical(ref) else 0.0
