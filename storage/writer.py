"""The batched exchange writer: the proxy's ``ExchangeSink`` backed by SQL and a spill folder.

``put`` only appends to an in-memory queue. One writer task takes batches
from it and commits them; a batch leaves memory only after its commit, or
once it is fsynced to a spill file. While the database is unreachable the
writer spills every batch and probes the database with backoff; when a probe
succeeds it replays the spill files. A queue that is full overflows to the
spill folder through a second task that only touches the disk, so the request
path never waits for the database or the disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Sequence
from enum import Enum
from pathlib import Path

import structlog
from prometheus_client import CollectorRegistry

from core import Exchange
from storage import codec
from storage.backoff import Backoff
from storage.batch_commit import commit_batch, count_dropped
from storage.database import Database
from storage.metrics import WriterMetrics
from storage.outage import Outage
from storage.privacy import PrivacyPolicy
from storage.spill import Claim, SpillDir

log = structlog.get_logger(__name__)

PROBE = Backoff(base_s=0.25, cap_s=5.0)  # how often a down database is tried again


# The longest the writer redacts before it yields to the event loop. Redaction
# runs in steps of at most one piece of text (16 K characters, ~0.3-2.5 ms), so a
# slice ends at most one step past this.
PREPARE_SLICE_S = 0.002


class _Outcome(Enum):
    STORED = "stored"
    UNAVAILABLE = "unavailable"  # the database could not be reached; nothing was lost


class ExchangeWriter:
    """Stores exchanges without ever making the caller wait.

    Every exchange handed to ``put`` ends up written, spilled (then replayed),
    rejected into a ``rejected-*.jsonl`` file, or counted as dropped and logged.
    """

    def __init__(
        self,
        database: Database,
        *,
        spill_dir: Path,
        privacy: PrivacyPolicy,
        queue_size: int = 10_000,
        batch_size: int = 256,
        linger_s: float = 0.2,
        registry: CollectorRegistry | None = None,
        on_settled: Callable[[Sequence[Exchange]], None] | None = None,
    ) -> None:
        if queue_size < 1 or batch_size < 1:
            raise ValueError("queue_size and batch_size must be at least 1")
        self._db = database
        self._spill = SpillDir(spill_dir)
        self._privacy = privacy
        self._queue_size = queue_size
        self._batch_size = batch_size
        # Waiting briefly for a batch to fill turns one commit per exchange into one
        # per batch: at a few hundred requests/s that is most of the writer's cost.
        self._linger_s = linger_s
        self._batch_full = asyncio.Event()
        # Told of every exchange once it is committed, spilled, rejected or counted as
        # dropped: from then on nothing in memory is needed to account for it.
        self._on_settled = on_settled
        self.metrics = WriterMetrics(registry if registry is not None else CollectorRegistry())

        self._queue: deque[Exchange] = deque()
        self._overflow: list[Exchange] = []
        self._in_flight: list[Exchange] = []
        self._overflow_in_flight: list[Exchange] = []
        self._wake = asyncio.Event()
        self._overflow_wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._overflow_task: asyncio.Task[None] | None = None
        self._closing = False
        self._stopped = False
        self._outage = Outage(PROBE)
        self._replay_needed = True  # files left by an earlier run
        self._replaying = False

    # -- the sink ---------------------------------------------------------------

    def put(self, exchange: Exchange) -> None:
        """Queue an exchange; never blocks, never awaits."""
        if self._closing:
            # Shutting down: the writer no longer takes from the queue.
            self._spill_now([exchange], prepared=False)
            self._settled([exchange])
            return
        if len(self._queue) < self._queue_size:
            self._queue.append(exchange)
            self._wake.set()
            if len(self._queue) >= self._batch_size:
                self._batch_full.set()
        else:
            self._overflow.append(exchange)
            self._overflow_wake.set()

    def replay_soon(self) -> None:
        """Spill files appeared that another process wrote: replay them when idle."""
        self._replay_needed = True
        self._wake.set()

    def queue_depth(self) -> int:
        """Exchanges held in memory: waiting for the database, or for the spill disk."""
        return len(self._queue) + len(self._overflow)

    # -- life cycle -------------------------------------------------------------

    async def start(self) -> None:
        """Start the writer task; it replays spill files left by earlier runs first."""
        if self._task is not None:
            raise RuntimeError("ExchangeWriter.start() called twice")
        self._task = asyncio.create_task(self._run(), name="understudy-exchange-writer")
        self._overflow_task = asyncio.create_task(
            self._run_overflow(), name="understudy-exchange-spiller"
        )

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Write what is queued within ``timeout_s``; spill whatever is left."""
        if self._stopped:
            return
        self._closing = True
        self._wake.set()
        self._batch_full.set()
        self._overflow_wake.set()
        tasks = [t for t in (self._task, self._overflow_task) if t is not None]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=max(timeout_s, 0.0))
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        left = [*self._in_flight, *self._overflow_in_flight, *self._queue, *self._overflow]
        self._in_flight, self._overflow_in_flight, self._overflow = [], [], []
        self._queue.clear()
        if left:
            # A batch cut off mid-commit may also be in the database: replay dedups it.
            await asyncio.to_thread(self._spill_now, left, prepared=False)
            log.warning("writer stopped before draining; rest spilled", spilled=len(left))
            self._settled(left)
        self._stopped = True

    async def wait_idle(self, timeout_s: float = 30.0) -> None:
        """Wait until everything queued or spilled is in the database (tests, benchmarks)."""
        async with asyncio.timeout(timeout_s):
            # Polling keeps the writer free of bookkeeping that only this helper needs.
            while not self._idle():  # noqa: ASYNC110
                await asyncio.sleep(0.01)

    def _idle(self) -> bool:
        return not (
            self._queue
            or self._overflow
            or self._in_flight
            or self._overflow_in_flight
            or self._outage.down
            or self._replay_needed
            or self._replaying
        )

    # -- the writer task --------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                if not self._queue:
                    if self._closing:
                        return
                    await self._when_idle(loop)
                    continue
                await self._linger()
                size = min(self._batch_size, len(self._queue))
                batch = [self._queue.popleft() for _ in range(size)]
                self._in_flight = batch
                if self._outage.probe_due(loop.time()):
                    await self._probe(loop)
                if self._outage.down:
                    await self._spill_async(batch, prepared=False)
                else:
                    await self._store_or_spill(batch)
                self._in_flight = []
                self._settled(batch)
            except asyncio.CancelledError:
                raise
            except Exception:
                # A bug here must not stop the writer: keep the batch on disk and go on.
                log.exception("exchange writer failed; spilling its batch")
                if self._in_flight:
                    batch, self._in_flight = self._in_flight, []
                    await self._spill_async(batch, prepared=False)
                    self._settled(batch)
                await asyncio.sleep(1.0)  # do not spin if the failure repeats

    async def _linger(self) -> None:
        """Give a partial batch up to ``linger_s`` to fill, unless stopping or the database is down."""
        if self._closing or self._outage.down or len(self._queue) >= self._batch_size:
            return
        self._batch_full.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._batch_full.wait(), self._linger_s)

    async def _when_idle(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._outage.down:
            if self._outage.probe_due(loop.time()):
                await self._probe(loop)
                return
            timeout: float | None = self._outage.seconds_to_probe(loop.time())
        elif self._replay_needed:
            await self._replay()
            return
        else:
            timeout = None
        self._wake.clear()
        if self._queue or self._closing:
            return
        with contextlib.suppress(TimeoutError):  # time to probe the database again
            await asyncio.wait_for(self._wake.wait(), timeout)

    async def _store_or_spill(self, batch: list[Exchange]) -> None:
        prepared = await self._prepare_in_slices(batch)
        if await self._store(prepared, replay=False) is _Outcome.UNAVAILABLE:
            await self._spill_async(prepared, prepared=True)

    async def _prepare_in_slices(self, batch: Sequence[Exchange]) -> list[Exchange]:
        """Apply privacy on the event loop, yielding every ``PREPARE_SLICE_S``.

        Not in a worker thread: a CPU-bound thread holds the GIL for up to the
        interpreter's 5 ms switch interval, which the proxy would see as latency.
        The slice is measured, not counted in exchanges: one exchange may hold
        a megabyte of text, and is then redacted over many slices.
        """
        prepared: list[Exchange] = []
        slice_end = time.perf_counter() + PREPARE_SLICE_S
        for exchange in batch:
            steps = self._privacy.apply_steps(exchange)
            while True:
                try:
                    next(steps)
                except StopIteration as done:
                    prepared.append(done.value)
                    break
                if time.perf_counter() >= slice_end:
                    await asyncio.sleep(0)
                    slice_end = time.perf_counter() + PREPARE_SLICE_S
        await asyncio.sleep(0)
        return prepared

    async def _store(self, prepared: list[Exchange], *, replay: bool) -> _Outcome:
        outage = await commit_batch(self._db, self._spill, self.metrics, prepared, replay=replay)
        if outage is not None:
            self._enter_outage(outage)
            return _Outcome.UNAVAILABLE
        self._outage.stored()
        return _Outcome.STORED

    # -- outage and recovery ----------------------------------------------------

    def _enter_outage(self, exc: BaseException) -> None:
        if self._outage.began(asyncio.get_running_loop().time()):
            log.warning(
                "database unavailable; spilling exchanges to disk",
                error=type(exc).__name__,
                spill_dir=str(self._spill.directory),
            )

    async def _probe(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            await self._db.ping()
        except Exception as exc:
            self._outage.probe_failed(loop.time())
            log.debug("database still unavailable", error=type(exc).__name__)
            return
        log.info("database reachable again; replaying spilled exchanges")
        self._outage.probe_succeeded()
        self._replay_needed = True

    async def _replay(self) -> None:
        """Write every spill file back, oldest first; each file is deleted once committed."""
        # Cleared first: a spill landing while we replay sets it again.
        self._replay_needed = False
        self._replaying = True
        try:
            await self._replay_files()
        finally:
            self._replaying = False

    async def _replay_files(self) -> None:
        for path in await asyncio.to_thread(self._spill.files):
            if self._closing or self._outage.down:
                self._replay_needed = True
                return
            claim = await asyncio.to_thread(self._spill.claim, path)
            if claim is None:
                continue  # another process replayed it
            committed = False
            try:
                committed = await self._replay_claim(claim)
            finally:
                if committed:
                    await asyncio.to_thread(claim.commit)
                else:
                    claim.release()
            if not committed:
                self._replay_needed = True
                return

    async def _replay_claim(self, claim: Claim) -> bool:
        exchanges: list[Exchange] = []
        for number, line in enumerate(claim.lines, start=1):
            try:
                exchanges.append(codec.loads(line))
            except (ValueError, KeyError, TypeError) as exc:
                # Only a crash or a full disk mid-append leaves a torn line.
                self.metrics.dropped.inc()
                log.error(
                    "unreadable line in spill file dropped",
                    file=claim.path.name,
                    line=number,
                    error=type(exc).__name__,
                )
        for start in range(0, len(exchanges), self._batch_size):
            chunk = exchanges[start : start + self._batch_size]
            prepared = await self._prepare_in_slices(chunk)
            if await self._store(prepared, replay=True) is _Outcome.UNAVAILABLE:
                return False
            if self._closing:
                return False  # the rest stays on disk for the next start
        if exchanges:
            log.info("spill file replayed", file=claim.path.name, exchanges=len(exchanges))
        return True

    # -- spilling ---------------------------------------------------------------

    async def _run_overflow(self) -> None:
        """Move exchanges the full queue could not take to the spill folder."""
        while True:
            self._overflow_wake.clear()
            if self._overflow:
                batch, self._overflow = self._overflow, []
                self._overflow_in_flight = batch
                await self._spill_async(batch, prepared=False)
                self._overflow_in_flight = []
                self._settled(batch)
                continue
            if self._closing:
                return
            await self._overflow_wake.wait()

    def _settled(self, batch: Sequence[Exchange]) -> None:
        if self._on_settled is not None:
            self._on_settled(batch)

    async def _spill_async(self, batch: Sequence[Exchange], *, prepared: bool) -> None:
        await asyncio.to_thread(self._spill_now, batch, prepared=prepared)
        self._replay_needed = True
        self._wake.set()

    def _spill_now(self, batch: Sequence[Exchange], *, prepared: bool) -> None:
        """Append to the spill file and fsync; on a disk failure count and log drops."""
        lines: list[str] = []
        encoded: list[Exchange] = []
        for exchange in batch:
            try:
                record = exchange if prepared else self._privacy.apply(exchange)
                lines.append(codec.dumps(record))
            except Exception as exc:  # a value JSON cannot hold: nowhere to keep it
                count_dropped(self.metrics, [exchange], exc)
            else:
                encoded.append(exchange)
        if not lines:
            return
        try:
            self._spill.append(lines)
        except OSError as exc:
            count_dropped(self.metrics, encoded, exc)
        else:
            self.metrics.spilled.inc(len(lines))
            self._replay_needed = True
