"""Circuit-breaker trips on this replica, and what each means for the rollout.

The breaker reports on the request path, so ``RecentTrips.tripped`` only notes the
trip and wakes the controller: no I/O, nothing that can raise. Per candidate only the
newest trip is kept, with how many came since the controller last took them, so the
list stays bounded however long the database is away. Each replica's controller turns
its own replica's trips into a rollback: only this replica saw them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from enum import StrEnum

from core import GuardrailTrip, RolloutMode
from rollout.plan import served_share
from rollout.position import StagePosition
from rollout.views import when


class TripOutcome(StrEnum):
    """What the controller made of a trip."""

    ROLLBACK = "rollback"  # the candidate served users: back to shadow, paused
    NOT_SERVING = "not_serving"  # shadow, 0 %, off or killed: it serves nobody to take back
    OTHER_CANDIDATE = "other_candidate"  # the rollout's candidate is another one
    BEFORE_STAGE = "before_stage"  # it tripped before the current stage began


@dataclass(frozen=True, slots=True)
class PendingTrip:
    trip: GuardrailTrip  # the candidate's newest trip
    count: int  # its trips since the controller last took them


class RecentTrips:
    """A ``core.TripReporter`` that holds trips until the controller's next look."""

    def __init__(self) -> None:
        self._pending: dict[str, PendingTrip] = {}
        self._arrived = asyncio.Event()

    def tripped(self, trip: GuardrailTrip) -> None:
        held = self._pending.get(trip.candidate)
        self._pending[trip.candidate] = PendingTrip(trip, held.count + 1 if held else 1)
        self._arrived.set()

    def pending(self) -> list[PendingTrip]:
        """The trips not yet taken, oldest first."""
        return sorted(self._pending.values(), key=lambda p: p.trip.at)

    def taken(self, pending: PendingTrip) -> None:
        """``pending`` is dealt with; a newer trip of its candidate stays."""
        if self._pending.get(pending.trip.candidate) is pending:
            del self._pending[pending.trip.candidate]

    async def wait(self, timeout_s: float) -> None:
        """Until a trip arrives, or ``timeout_s`` passes."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._arrived.wait()
        except TimeoutError:
            return
        finally:
            self._arrived.clear()


def trip_outcome(trip: GuardrailTrip, at: StagePosition | None) -> TripOutcome:
    """What a trip does to the rollout's default row (the one the controller drives)."""
    if at is None:
        return TripOutcome.NOT_SERVING
    row = at.current
    if row.candidate != trip.candidate:
        return TripOutcome.OTHER_CANDIDATE
    if row.killed or served_share(RolloutMode(row.mode), row.percent) == 0:
        return TripOutcome.NOT_SERVING
    # A trip from before the stage says nothing of it; if the candidate still fails, the
    # probe after the cool-down trips again, inside the stage.
    if trip.at < at.position.entered_at:
        return TripOutcome.BEFORE_STAGE
    return TripOutcome.ROLLBACK


def trip_reason(pending: PendingTrip) -> str:
    """The audit log's reason for a rollback a trip caused: candidate, cause, failures."""
    trip = pending.trip
    more = f"; {pending.count} trips since the last look" if pending.count > 1 else ""
    return (
        f"rollback: circuit breaker of candidate {trip.candidate!r} opened "
        f"({trip.cause.value}: {trip.failures} of {trip.calls} calls failed) "
        f"at {when(trip.at)}{more}"
    )
