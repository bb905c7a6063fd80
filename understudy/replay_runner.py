"""Sending a replay run's pending requests to its target and storing each answer.

The target is one upstream adapter, the same the proxy uses; a request goes out as the
proxy's shadow of it, and the answer is read by the proxy's capture and ``observe``, then
masked by the storage privacy policy, so a replayed answer is recorded exactly as a live
one. Nothing here knows the primary: it cannot be sent anything.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from dataclasses import dataclass

import structlog

from core import ErrorKind, Exchange, Role, UpstreamRequest
from proxy.arms import call_to_end
from proxy.capture import Capture
from proxy.exchange import _shadow_body
from proxy.observe import observe
from proxy.upstreams.port import Upstream
from proxy.validation import ParsedRequest
from storage.database import Database
from storage.privacy import PrivacyPolicy
from storage.replay import pending_exchanges, record_result
from understudy.progress import Progress

log = structlog.get_logger("understudy.replay")

PENDING_BATCH = 200  # pending exchanges read at a time
# The target refused the credentials: a setup problem, not the model's answer.
REFUSED = frozenset({401, 403})


@dataclass(frozen=True, slots=True)
class ReplayPace:
    concurrency: int  # calls in flight at most
    rate: float | None  # call starts per second at most; None: as fast as the slots free
    max_chars: int  # a recorded answer's text is cut here, as the proxy's


@dataclass(slots=True)
class ReplayTally:
    stored: int = 0  # results recorded by this process
    failed: int = 0  # of those, failures (timeouts, error statuses, bad bodies)
    unreached: int = 0  # no connection, or credentials refused: left pending, for a rerun


class Pacer:
    """Spaces call starts ``1 / rate`` apart; a pacer that fell behind does not burst."""

    def __init__(self, rate: float | None) -> None:
        self._interval = None if rate is None else 1.0 / rate
        self._next: float | None = None

    async def wait(self) -> None:
        if self._interval is None:
            return
        now = time.monotonic()
        start = now if self._next is None else max(self._next, now)
        self._next = start + self._interval
        if start > now:
            await asyncio.sleep(start - now)


class ReplayRunner:
    """Replays one run's pending exchanges through ``upstream``.

    ``feed`` starts calls until nothing is pending (or it is cancelled: Ctrl-C); each
    call is a tracked task. ``drain`` waits for the calls in flight; ``cancel_in_flight``
    ends them unrecorded, so they stay pending and a rerun sends them.
    """

    def __init__(
        self,
        db: Database,
        run_id: int,
        upstream: Upstream,
        policy: PrivacyPolicy,
        pace: ReplayPace,
        progress: Progress,
    ) -> None:
        self._db = db
        self._run_id = run_id
        self._upstream = upstream
        self._policy = policy
        self._pace = pace
        self._progress = progress
        self._slots = asyncio.Semaphore(pace.concurrency)
        self._in_flight: set[asyncio.Task[None]] = set()
        self._failure: BaseException | None = None
        self.tally = ReplayTally()

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    async def feed(self) -> None:
        pacer = Pacer(self._pace.rate)
        after = None
        while self._failure is None:
            batch = await pending_exchanges(
                self._db, self._run_id, after=after, limit=PENDING_BATCH
            )
            if not batch:
                return
            for original in batch:
                after = (original.created_at, original.id)
                await self._slots.acquire()
                if self._failure is not None:
                    self._slots.release()
                    return
                await pacer.wait()
                task = asyncio.create_task(
                    self._replay(original), name=f"replay-{self._run_id}-{original.id}"
                )
                self._in_flight.add(task)
                task.add_done_callback(self._call_done)

    async def drain(self, timeout_s: float | None = None) -> bool:
        """Wait for the calls in flight; False when some still run after ``timeout_s``."""
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=timeout_s)
        return not self._in_flight

    async def cancel_in_flight(self) -> int:
        """End the calls still running, unrecorded; how many there were."""
        running = set(self._in_flight)
        for task in running:
            task.cancel()
        if running:
            await asyncio.wait(running)
        return len(running)

    def raise_failure(self) -> None:
        """Storing a result failed: the run cannot go on, and the caller says why."""
        if self._failure is not None:
            raise self._failure

    def _call_done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._slots.release()
        if not task.cancelled() and (exc := task.exception()) is not None:
            self._failure = self._failure or exc

    async def _replay(self, original: Exchange) -> None:
        parsed = ParsedRequest(
            route=original.route,
            body=dict(original.request),
            raw=None,
            model=original.requested_model,
            stream=original.stream,
        )
        model = self._upstream.config.mapped_model(original.requested_model)
        body = _shadow_body(parsed, model)
        capture = Capture()
        await call_to_end(
            self._upstream,
            UpstreamRequest(route=original.route, body=body, stream=original.stream, headers={}),
            capture,
        )
        observed = observe(
            capture,
            upstream=self._upstream.name,
            role=Role.SHADOW,
            model=model,
            route=original.route,
            stream=original.stream,
            max_chars=self._pace.max_chars,
        )
        fields = {
            "run_id": self._run_id,
            "exchange_id": str(original.id),
            "status": observed.status,
            "latency_ms": None if observed.latency_ms is None else round(observed.latency_ms, 2),
        }
        if observed.error_kind is ErrorKind.CONNECT or observed.status in REFUSED:
            # Not an answer of the model: left pending, so running again sends it.
            self.tally.unreached += 1
            log.debug("replay_unreached", **fields)
            return
        # Masked as a live answer is before it is stored; the request is stored already.
        masked = self._policy.apply(
            dataclasses.replace(original, request={}, observations=(observed,))
        ).observations[0]
        if await record_result(self._db, self._run_id, original, masked):
            self.tally.stored += 1
            self.tally.failed += 0 if observed.ok else 1
            self._progress.advance()
        error = None if observed.error_kind is None else observed.error_kind.value
        log.debug("replay_exchange", error=error, **fields)
