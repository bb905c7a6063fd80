"""Guardrail trips: what a proxy's circuit breaker reports when it stops using a candidate."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol


class TripCause(StrEnum):
    CONSECUTIVE_FAILURES = "consecutive_failures"  # that many candidate calls failed in a row
    ERROR_RATE = "error_rate"  # the share of failed calls in the sliding window was too high
    PROBE_FAILED = "probe_failed"  # the one call let through after the cool-down failed


@dataclass(frozen=True, slots=True)
class GuardrailTrip:
    """A candidate's breaker opened: it serves nobody and is mirrored nowhere for a while."""

    candidate: str
    cause: TripCause
    at: datetime
    failures: int  # failed calls counted by the rule that tripped
    calls: int  # calls that rule looked at
    cooldown_s: float  # how long before one probe call is let through


class TripReporter(Protocol):
    """Told of every trip, on the request path: ``tripped`` must not block or raise."""

    def tripped(self, trip: GuardrailTrip) -> None: ...
