"""The proxy's side of the recorder: an ``ExchangeSink`` that hands exchanges to another process.

``put`` encodes the exchange and writes it to the recorder's socket without waiting.
The link keeps every exchange until the recorder says it is settled (committed,
spilled, rejected or counted as dropped), so a recorder that dies loses nothing the
proxy gave it: the unsettled ones are spilled here, as are exchanges that arrive while
the recorder is gone or too far behind, and the recorder replays the spill folder.
A recorder that settled an exchange but died before saying so sees it again in the
spill files; the database skips an id it already holds, so nothing is stored twice.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from pathlib import Path

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge

from core import Exchange
from storage import codec, handoff
from storage.backoff import Backoff
from storage.privacy import PrivacyPolicy
from storage.spill import SpillDir

log = structlog.get_logger(__name__)

RECONNECT = Backoff(base_s=0.05, cap_s=1.0)
METRICS_TIMEOUT_S = 1.0
# Frames go out together every 25 ms: one write to the socket (and one wake-up of the
# recorder) per batch, not per exchange. A wake-up costs the recorder more than decoding
# an exchange; at 5 ms, 200 req/s still woke it for nearly every one. Nothing waits on
# the frames, and the recorder's writer gathers them for up to 200 ms anyway.
FLUSH_S = 0.025


class RecorderLinkMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.spilled = Counter(
            "understudy_recorder_handoff_spilled",
            "Exchanges the proxy spilled itself because the recorder was gone or too far behind.",
            registry=registry,
        )
        self.dropped = Counter(
            "understudy_recorder_handoff_dropped",
            "Exchanges lost in the hand-off: neither handed over nor spilled (the disk failed).",
            registry=registry,
        )
        self.connected = Gauge(
            "understudy_recorder_connected",
            "1 while the proxy is connected to its recorder process.",
            registry=registry,
        )


class RecorderLink:
    """Hands exchanges to the recorder process; never blocks, never awaits."""

    def __init__(
        self,
        socket_path: Path,
        *,
        spill_dir: Path,
        privacy: PrivacyPolicy,
        registry: CollectorRegistry,
        max_unsettled: int = 20_000,
        max_buffered_bytes: int = 32 * 1024 * 1024,
    ) -> None:
        self._socket_path = socket_path
        self._spill = SpillDir(spill_dir)
        self._privacy = privacy
        self._max_unsettled = max_unsettled
        self._max_buffered = max_buffered_bytes
        self.metrics = RecorderLinkMetrics(registry)
        self._seq = 0
        self._unsettled: dict[int, Exchange] = {}
        self._drained = asyncio.Event()
        self._drained.set()
        self._to_spill: list[Exchange] = []
        self._spill_wake = asyncio.Event()
        self._writer: asyncio.StreamWriter | None = None
        self._pending: list[bytes] = []  # frames for the next write
        self._flush_at: asyncio.TimerHandle | None = None
        self._metrics_reply: asyncio.Future[bytes] | None = None
        self._closing = False
        self._stopped = False
        self._connection: asyncio.Task[None] | None = None
        self._spiller: asyncio.Task[None] | None = None

    # -- the sink ---------------------------------------------------------------

    def put(self, exchange: Exchange) -> None:
        if self._stopped:  # nothing runs any more to hand it over: straight to disk
            self._spill_now([exchange])
            return
        writer = self._writer
        if (
            writer is None
            or self._closing
            or len(self._unsettled) >= self._max_unsettled
            or writer.transport.get_write_buffer_size() >= self._max_buffered
        ):
            self._spill_later([exchange])
            return
        line = codec.dump_bytes(exchange)
        self._seq += 1
        self._unsettled[self._seq] = exchange
        self._drained.clear()
        self._pending.append(handoff.exchange_frame(self._seq, line))
        if self._flush_at is None:
            self._flush_at = asyncio.get_running_loop().call_later(FLUSH_S, self._flush)

    def _flush(self) -> None:
        self._flush_at = None
        frames, self._pending = self._pending, []
        if frames and self._writer is not None:
            self._writer.write(b"".join(frames))

    def queue_depth(self) -> int:
        """Exchanges held here: not yet settled by the recorder, or waiting for the spill disk."""
        return len(self._unsettled) + len(self._to_spill)

    # -- life cycle -------------------------------------------------------------

    async def start(self) -> None:
        self._connection = asyncio.create_task(
            self._stay_connected(), name="understudy-recorder-link"
        )
        self._spiller = asyncio.create_task(
            self._run_spiller(), name="understudy-recorder-link-spiller"
        )

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Wait up to ``timeout_s`` for the recorder to settle what it holds; spill the rest."""
        if self._flush_at is not None:
            self._flush_at.cancel()
            self._flush()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drained.wait(), max(timeout_s, 0.0))
        self._closing = True
        if self._connection is not None:
            self._connection.cancel()
            await asyncio.gather(self._connection, return_exceptions=True)
        self._disconnected()
        self._spill_wake.set()
        if self._spiller is not None:
            await self._spiller  # it empties the spill list before it ends
        self._stopped = True

    async def recorder_metrics(self) -> bytes:
        """The recorder's own metrics, or nothing when it does not answer in time."""
        writer = self._writer
        if writer is None:
            return b""
        if self._metrics_reply is None or self._metrics_reply.done():
            self._metrics_reply = asyncio.get_running_loop().create_future()
            writer.write(handoff.frame(handoff.METRICS))
        try:
            return await asyncio.wait_for(asyncio.shield(self._metrics_reply), METRICS_TIMEOUT_S)
        except (TimeoutError, ConnectionError):
            return b""

    # -- the connection ---------------------------------------------------------

    async def _stay_connected(self) -> None:
        attempt = 0
        while True:
            try:
                reader, writer = await asyncio.open_unix_connection(self._socket_path)
            except OSError:
                await asyncio.sleep(RECONNECT.delay(attempt))
                attempt += 1
                continue
            attempt = 0
            self._writer = writer
            self.metrics.connected.set(1)
            if self._spill.pending():
                writer.write(handoff.frame(handoff.REPLAY))
            try:
                await self._read_replies(reader)
            except (asyncio.IncompleteReadError, ConnectionError, handoff.BadFrame) as exc:
                log.warning("recorder connection lost", error=type(exc).__name__)
            finally:
                self._disconnected()

    async def _read_replies(self, reader: asyncio.StreamReader) -> None:
        while True:
            kind, payload = await handoff.read_frame(reader)
            if kind == handoff.SETTLED:
                for seq in handoff.settled_seqs(payload):
                    self._unsettled.pop(seq, None)
                if not self._unsettled:
                    self._drained.set()
            elif kind == handoff.METRICS:
                reply = self._metrics_reply
                if reply is not None and not reply.done():
                    reply.set_result(payload)

    def _disconnected(self) -> None:
        """Whatever the recorder had not settled is spilled here; it replays it later."""
        writer, self._writer = self._writer, None
        self._pending = []  # their exchanges are among the unsettled, spilled below
        self.metrics.connected.set(0)
        if writer is not None:
            writer.close()
        if self._metrics_reply is not None and not self._metrics_reply.done():
            self._metrics_reply.set_exception(ConnectionError("recorder gone"))
        if self._unsettled:
            self._spill_later(list(self._unsettled.values()))
            self._unsettled.clear()
        self._drained.set()

    # -- spilling ---------------------------------------------------------------

    def _spill_later(self, exchanges: Sequence[Exchange]) -> None:
        self._to_spill.extend(exchanges)
        self._spill_wake.set()

    async def _run_spiller(self) -> None:
        while True:
            if not self._to_spill:
                if self._closing:
                    return
                await self._spill_wake.wait()
                self._spill_wake.clear()
                continue
            batch, self._to_spill = self._to_spill, []
            await asyncio.to_thread(self._spill_now, batch)
            if self._writer is not None:
                self._writer.write(handoff.frame(handoff.REPLAY))

    def _spill_now(self, batch: Sequence[Exchange]) -> None:
        lines: list[str] = []
        for exchange in batch:
            try:
                lines.append(codec.dumps(self._privacy.apply(exchange)))
            except Exception as exc:  # a value JSON cannot hold: nowhere to keep it
                self._dropped(1, exc)
        try:
            self._spill.append(lines)
        except OSError as exc:
            self._dropped(len(lines), exc)
        else:
            self.metrics.spilled.inc(len(lines))

    def _dropped(self, count: int, exc: Exception) -> None:
        self.metrics.dropped.inc(count)
        log.error(
            "exchanges dropped: the recorder was gone and the spill disk failed",
            exchanges=count,
            error=type(exc).__name__,
            errno=getattr(exc, "errno", None),
        )
