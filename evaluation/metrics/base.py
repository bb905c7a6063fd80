"""The one interface every per-pair metric implements."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from core import Direction


@runtime_checkable
class PairMetric(Protocol):
    """Scores a candidate answer against a reference answer.

    ``score`` returns a float (similarities lie in [0, 1]) or NaN when the
    metric does not apply to the pair, for example JSON equality when the
    reference is not JSON. NaN pairs are left out of averages.
    """

    name: str
    direction: Direction

    def score(self, candidate: str, reference: str) -> float: ...
