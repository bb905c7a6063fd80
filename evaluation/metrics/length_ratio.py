"""Length ratio: the shorter answer's token count over the longer one's (1.0 = same length).

Symmetric on purpose, so "higher is better" holds whether the candidate is
terser or wordier; the report shows the signed ratio separately.
"""

from __future__ import annotations

from typing import ClassVar

from core import Direction


def signed_length_ratio(candidate: str, reference: str) -> float:
    """Candidate tokens over reference tokens; NaN when the reference is empty."""
    ref = len(reference.split())
    return len(candidate.split()) / ref if ref else float("nan")


class LengthRatio:
    name: ClassVar[str] = "length_ratio"
    direction: ClassVar[Direction] = Direction.HIGHER_IS_BETTER

    def score(self, candidate: str, reference: str) -> float:
        c, r = len(candidate.split()), len(reference.split())
        if c == r:
            return 1.0
        return min(c, r) / max(c, r)
