"""The circuit breaker per candidate: its rules on a controlled clock, then through the proxy
with real fake upstreams: it opens on a failing candidate, requests stop paying for
failed attempts, no shadows go out while it is open, and it recloses after a probe."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry

from core import ErrorKind, GuardrailTrip, Observation, Role, TripCause
from proxy.breaker import Admission, BreakerState, CandidateBreakers, failed
from proxy.config import BreakerConfig
from tests.fakes import Fault
from tests.faults.conftest import figure
from tests.proxy.conftest import Rig, RigFactory, chat

SERVED_BY = "x-understudy-served-by"
__all__ = ["figure"]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Trips:
    def __init__(self) -> None:
        self.seen: list[GuardrailTrip] = []

    def tripped(self, trip: GuardrailTrip) -> None:
        self.seen.append(trip)


def obs(status: int | None, error: ErrorKind | None = None, upstream: str = "local") -> Observation:
    return Observation(upstream, Role.SERVED, "m", status, 10.0, 5.0, error_kind=error)


OK, BAD = obs(200), obs(500, ErrorKind.HTTP_STATUS)


def board(config: BreakerConfig) -> tuple[CandidateBreakers, Clock, Trips, CollectorRegistry]:
    clock, trips, registry = Clock(), Trips(), CollectorRegistry()
    return CandidateBreakers(["local"], config, registry, trips, clock), clock, trips, registry


def test_what_counts_as_a_failure() -> None:
    assert failed(OK) is False
    assert failed(BAD) is True
    assert failed(obs(None, ErrorKind.TIMEOUT)) is True
    assert failed(obs(None, ErrorKind.CONNECT)) is True
    assert failed(obs(200, ErrorKind.INCOMPLETE_STREAM)) is True
    assert failed(obs(429, ErrorKind.HTTP_STATUS)) is True  # overloaded: the candidate's
    assert failed(obs(400, ErrorKind.HTTP_STATUS)) is None  # the request's fault
    assert failed(obs(None, ErrorKind.CLIENT_ABORTED)) is None


def test_consecutive_failures_open_it_and_a_probe_closes_it() -> None:
    breakers, clock, trips, registry = board(BreakerConfig(consecutive_failures=3, cooldown_s=5))
    for _ in range(2):
        assert breakers.admit("local") is Admission.CALL
        breakers.record(BAD, probe=False)
    breakers.record(OK, probe=False)  # a success resets the run
    for _ in range(3):
        breakers.record(BAD, probe=False)
    assert breakers.state("local") is BreakerState.OPEN
    assert [t.cause for t in trips.seen] == [TripCause.CONSECUTIVE_FAILURES]
    assert (trips.seen[0].failures, trips.seen[0].calls) == (3, 3)
    assert registry.get_sample_value("understudy_breaker_state", {"candidate": "local"}) == 2
    labels = {"candidate": "local", "cause": "consecutive_failures"}
    assert registry.get_sample_value("understudy_breaker_trips_total", labels) == 1

    assert breakers.admit("local") is Admission.REFUSED
    breakers.record(OK, probe=False)  # a call begun before it opened does not close it
    assert breakers.state("local") is BreakerState.OPEN
    clock.now += 5
    assert breakers.admit("local") is Admission.PROBE
    assert breakers.admit("local") is Admission.REFUSED  # one probe at a time
    assert registry.get_sample_value("understudy_breaker_state", {"candidate": "local"}) == 1
    breakers.record(OK, probe=True)
    assert breakers.state("local") is BreakerState.CLOSED
    assert breakers.admit("local") is Admission.CALL


def test_a_failed_probe_reopens_and_a_silent_one_is_replaced() -> None:
    breakers, clock, trips, _ = board(BreakerConfig(consecutive_failures=1, cooldown_s=5))
    breakers.record(BAD, probe=False)
    clock.now += 5
    assert breakers.admit("local") is Admission.PROBE
    breakers.record(BAD, probe=True)
    assert breakers.state("local") is BreakerState.OPEN
    assert trips.seen[-1].cause is TripCause.PROBE_FAILED
    clock.now += 4.9
    assert breakers.admit("local") is Admission.REFUSED  # a new cool-down began
    clock.now += 0.1
    assert breakers.admit("local") is Admission.PROBE
    breakers.record(obs(None, ErrorKind.CLIENT_ABORTED), probe=True)  # says nothing
    assert breakers.admit("local") is Admission.PROBE  # the next call probes at once
    clock.now += 5  # that probe never reported: after a cool-down another is let through
    assert breakers.admit("local") is Admission.PROBE


def test_the_error_rate_over_the_window_opens_it() -> None:
    config = BreakerConfig(consecutive_failures=100, window_s=10, min_calls=10, error_rate=0.5)
    breakers, clock, trips, _ = board(config)
    for i in range(9):  # two failures in three: never five in a row
        breakers.record(BAD if i % 3 else OK, probe=False)
        clock.now += 0.5
    assert breakers.state("local") is BreakerState.CLOSED  # 9 calls: under min_calls
    breakers.record(BAD, probe=False)
    assert breakers.state("local") is BreakerState.OPEN
    assert trips.seen[-1].cause is TripCause.ERROR_RATE
    assert (trips.seen[-1].failures, trips.seen[-1].calls) == (7, 10)


def test_old_calls_leave_the_window() -> None:
    config = BreakerConfig(consecutive_failures=100, window_s=10, min_calls=4, error_rate=0.5)
    breakers, clock, _, _ = board(config)
    for _ in range(3):
        breakers.record(BAD, probe=False)
    clock.now += 11  # those three failures are out of the window now
    for _ in range(3):
        breakers.record(OK, probe=False)
    breakers.record(BAD, probe=False)
    assert breakers.state("local") is BreakerState.CLOSED  # 1 failure in 4


def test_disabled_breakers_admit_everything() -> None:
    breakers, _, trips, _ = board(BreakerConfig(enabled=False, consecutive_failures=1))
    breakers.record(BAD, probe=False)
    assert breakers.admit("local") is Admission.CALL and not trips.seen


async def timed(rig: Rig) -> tuple[float, str]:
    start = time.perf_counter()
    raw = await rig.client().chat.completions.with_raw_response.create(**chat())
    return time.perf_counter() - start, raw.headers[SERVED_BY]


async def until(check: Callable[[], bool], limit_s: float = 5.0) -> None:
    deadline = time.monotonic() + limit_s
    while not check():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


COOL_DOWN_S = 3.0


async def test_a_failing_candidate_stops_costing_requests_and_recovers(
    make_rig: RigFactory, figure: Callable[[str], None]
) -> None:
    rig = await make_rig(
        rollout={"mode": "cutover", "candidate": "local"},
        candidate={"timeout_s": 0.3},
        # A cool-down well past the ten open requests below (about 0.5 s, more on a busy
        # machine): a half-open probe among them would be a request to the candidate.
        breaker={"consecutive_failures": 3, "cooldown_s": COOL_DOWN_S},
    )
    assert (await timed(rig))[1] == "local"
    rig.candidate.fault = Fault.HANG  # every attempt costs its full timeout
    paying = [await timed(rig) for _ in range(3)]
    assert all(by == "openai" for _, by in paying)
    await until(lambda: rig.metric("understudy_breaker_state", candidate="local") == 2)
    calls = len(rig.candidate.requests)
    free = [await timed(rig) for _ in range(10)]
    assert all(by == "openai" for _, by in free)
    assert len(rig.candidate.requests) == calls  # no failed attempt first
    before, after = statistics.median(t for t, _ in paying), statistics.median(t for t, _ in free)
    figure(
        f"median request: {before * 1000:.0f} ms paying a hung attempt, {after * 1000:.1f} ms open"
    )
    assert before >= 0.3 and after < before / 3, (before, after)
    assert (
        rig.metric(
            "understudy_fallbacks_total",
            route="chat.completions",
            upstream="local",
            reason="breaker_open",
        )
        == 10
    )
    trips = rig.metric(
        "understudy_breaker_trips_total", candidate="local", cause="consecutive_failures"
    )
    assert trips == 1

    rig.candidate.fault = None  # recovered: after the cool-down one probe closes it
    await asyncio.sleep(COOL_DOWN_S)
    assert (await timed(rig))[1] == "local"
    await until(lambda: rig.metric("understudy_breaker_state", candidate="local") == 0)
    assert [(await timed(rig))[1] for _ in range(3)] == ["local"] * 3
    exchanges = await rig.exchanges(1 + 3 + 10 + 1 + 3)
    rerouted = exchanges[4:14]
    # Recorded by assignment: the candidate was chosen and the primary answered.
    assert all(e.fallback and e.decision.served_is_candidate for e in rerouted)
    assert all(e.arm(Role.FAILED_OVER) is None for e in rerouted)
    events = [e["event"] for e in rig.log_events() if e["event"].startswith("breaker_")]
    assert events == ["breaker_opened", "breaker_half_open", "breaker_closed"]


async def test_no_shadows_while_open(make_rig: RigFactory) -> None:
    rig = await make_rig(
        rollout={"mode": "shadow", "candidate": "local", "shadow_rate": 1.0},
        breaker={"consecutive_failures": 2, "cooldown_s": 60},
    )
    rig.candidate.fault = Fault.HTTP_500
    client = rig.client()
    for i in range(2):
        await client.chat.completions.create(**chat())
        await rig.exchanges(i + 1)
    assert rig.metric("understudy_breaker_state", candidate="local") == 2
    for _ in range(5):
        await client.chat.completions.create(**chat())
    exchanges = await rig.exchanges(7)
    assert len(rig.candidate.requests) == 2
    assert all(e.arm(Role.SHADOW) is None for e in exchanges[2:])
    skipped = rig.metric(
        "understudy_shadows_skipped_total", upstream="local", reason="breaker_open"
    )
    assert skipped == 5
