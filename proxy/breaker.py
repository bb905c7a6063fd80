"""A circuit breaker per candidate: fast guardrails that need no database.

Closed, every call the routing decision asks for is made. Too many failures in a row,
or too high a share of failures over a short sliding window, open it: the candidate
then serves nobody (its share of requests goes straight to the primary, with no failed
attempt first) and is mirrored nowhere. After a cool-down one call is let through as a
probe (half-open): its success closes the breaker, its failure opens it again.
"""

from __future__ import annotations

import functools
import time
from collections import deque
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from enum import StrEnum

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge

from core import ErrorKind, GuardrailTrip, Observation, TripCause, TripReporter
from proxy.config import BreakerConfig

log = structlog.get_logger("understudy.breaker")

# Answers that blame the request, not the candidate: a bad request is refused by every
# upstream alike, so it says nothing about the candidate's health. 408 and 429 do.
_REQUEST_FAULT_STATUSES = range(400, 500)
_OVERLOAD_STATUSES = (408, 429)


class BreakerState(StrEnum):
    CLOSED = "closed"
    HALF_OPEN = "half_open"  # a probe call is under way
    OPEN = "open"


# The gauge's value per state: ordered by how little the candidate is used.
STATE_VALUES = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}


class Admission(StrEnum):
    CALL = "call"
    PROBE = "probe"  # the one call that decides whether an open breaker closes
    REFUSED = "refused"


def failed(obs: Observation) -> bool | None:
    """Whether a candidate call counts as failed; None when it says nothing of its health."""
    if obs.error_kind is ErrorKind.CLIENT_ABORTED:
        return None
    status = obs.status
    if status is not None and status in _REQUEST_FAULT_STATUSES:
        return True if status in _OVERLOAD_STATUSES else None
    return not obs.ok


class CircuitBreaker:
    """One candidate's breaker. Not thread-safe: it lives on the event loop."""

    def __init__(
        self,
        candidate: str,
        config: BreakerConfig,
        on_trip: Callable[[GuardrailTrip], None],
        on_state: Callable[[BreakerState], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.candidate = candidate
        self._config = config
        self._on_trip = on_trip
        self._on_state = on_state
        self._clock = clock
        self._window: deque[tuple[float, bool]] = deque()
        self._window_failures = 0
        self._in_a_row = 0
        self._state = BreakerState.CLOSED
        self._since = clock()  # when the state last changed (open: when it opened)

    @property
    def state(self) -> BreakerState:
        return self._state

    def admit(self) -> Admission:
        """Whether a call to the candidate may be made now. A PROBE must be recorded."""
        if self._state is BreakerState.CLOSED:
            return Admission.CALL
        # A probe that never reported (its call was never made) is given up after a cool-down.
        if self._clock() - self._since < self._config.cooldown_s:
            return Admission.REFUSED
        self._set(BreakerState.HALF_OPEN)
        log.info("breaker_half_open", candidate=self.candidate)
        return Admission.PROBE

    def record(self, outcome: bool | None, *, probe: bool) -> None:
        """Count a finished call: ``outcome`` True failed, False healthy, None neither."""
        if self._state is not BreakerState.CLOSED:
            if probe:
                self._probe_done(outcome)
            return  # calls started before the breaker opened no longer count
        if outcome is None:
            return
        now = self._clock()
        self._window.append((now, outcome))
        self._window_failures += outcome
        self._in_a_row = self._in_a_row + 1 if outcome else 0
        horizon = now - self._config.window_s
        while self._window and self._window[0][0] < horizon:
            self._window_failures -= self._window.popleft()[1]
        calls = len(self._window)
        if self._in_a_row >= self._config.consecutive_failures:
            self._trip(TripCause.CONSECUTIVE_FAILURES, self._in_a_row, self._in_a_row)
        elif (
            calls >= self._config.min_calls
            and self._window_failures >= self._config.error_rate * calls
        ):
            self._trip(TripCause.ERROR_RATE, self._window_failures, calls)

    def _probe_done(self, outcome: bool | None) -> None:
        if outcome is None:  # the probe's client left: the next call probes instead
            self._set(BreakerState.OPEN, since=self._since - self._config.cooldown_s)
        elif outcome:
            self._trip(TripCause.PROBE_FAILED, 1, 1)
        else:
            self._set(BreakerState.CLOSED)
            log.info("breaker_closed", candidate=self.candidate)

    def _trip(self, cause: TripCause, failures: int, calls: int) -> None:
        self._window.clear()
        self._window_failures = self._in_a_row = 0
        self._set(BreakerState.OPEN)
        trip = GuardrailTrip(
            candidate=self.candidate,
            cause=cause,
            at=datetime.now(UTC),
            failures=failures,
            calls=calls,
            cooldown_s=self._config.cooldown_s,
        )
        log.warning(
            "breaker_opened",
            candidate=self.candidate,
            cause=cause.value,
            failures=failures,
            calls=calls,
            cooldown_s=self._config.cooldown_s,
        )
        self._on_trip(trip)

    def _set(self, state: BreakerState, *, since: float | None = None) -> None:
        self._state = state
        self._since = self._clock() if since is None else since
        self._on_state(state)


class CandidateBreakers:
    """Every candidate's breaker, their metrics, and who is told of a trip."""

    def __init__(
        self,
        candidates: Iterable[str],
        config: BreakerConfig,
        registry: CollectorRegistry,
        reporter: TripReporter | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.enabled = config.enabled
        self._reporter = reporter
        self._state = Gauge(
            "understudy_breaker_state",
            "Each candidate's circuit breaker: 0 closed, 1 half-open (probing), 2 open.",
            ["candidate"],
            registry=registry,
        )
        self._trips = Counter(
            "understudy_breaker_trips",
            "Times a candidate's circuit breaker opened, by cause.",
            ["candidate", "cause"],
            registry=registry,
        )
        self._breakers = {
            name: CircuitBreaker(
                name,
                config,
                self._tripped,
                functools.partial(self._show_state, name),
                clock,
            )
            for name in candidates
        }
        for name in self._breakers:
            self._state.labels(name).set(STATE_VALUES[BreakerState.CLOSED])

    def _show_state(self, candidate: str, state: BreakerState) -> None:
        self._state.labels(candidate).set(STATE_VALUES[state])

    def state(self, candidate: str) -> BreakerState:
        return self._breakers[candidate].state

    def admit(self, candidate: str) -> Admission:
        if not self.enabled:
            return Admission.CALL
        return self._breakers[candidate].admit()

    def record(self, obs: Observation, *, probe: bool) -> None:
        """Count a candidate call's observation; other upstreams' are not counted."""
        breaker = self._breakers.get(obs.upstream)
        if breaker is not None and self.enabled:
            breaker.record(failed(obs), probe=probe)

    def _tripped(self, trip: GuardrailTrip) -> None:
        self._trips.labels(trip.candidate, trip.cause.value).inc()
        if self._reporter is not None:
            try:
                self._reporter.tripped(trip)
            except Exception as exc:  # a reporter must never fail a request
                log.error("breaker_report_failed", candidate=trip.candidate, error=repr(exc))
