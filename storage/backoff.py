"""Exponential backoff with jitter, so replicas retrying together spread out."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    base_s: float
    cap_s: float

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry ``attempt`` (0-based): half fixed, half random."""
        ceiling = min(self.cap_s, self.base_s * 2.0 ** min(attempt, 30))
        return ceiling / 2 + random.uniform(0, ceiling / 2)
