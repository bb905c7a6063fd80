"""The recorder's side of the hand-off: proxies connect, exchanges go into one ``ExchangeWriter``.

Each exchange is acknowledged (SETTLED) only once the writer has committed,
spilled, rejected or counted it, so a proxy holds it until nothing can lose it.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

import structlog

from core import Exchange
from storage import codec, handoff
from storage.writer import ExchangeWriter

log = structlog.get_logger(__name__)


class _Proxy:
    """One connected proxy process."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.open = True

    def send(self, data: bytes) -> None:
        if self.open:
            self.writer.write(data)


class RecorderService:
    """Listens on a Unix socket and feeds every connected proxy's exchanges to the writer."""

    def __init__(self, metrics_text: Callable[[], bytes]) -> None:
        self._metrics_text = metrics_text
        self._owners: dict[uuid.UUID, tuple[_Proxy, int]] = {}
        self._writer: ExchangeWriter | None = None
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.Task[None]] = set()

    def settled(self, batch: Sequence[Exchange]) -> None:
        """The writer's callback: tell each proxy which of its exchanges are safe."""
        seqs: dict[_Proxy, list[int]] = defaultdict(list)
        for exchange in batch:
            owner = self._owners.pop(exchange.id, None)
            if owner is not None:
                seqs[owner[0]].append(owner[1])
        for proxy, numbers in seqs.items():
            proxy.send(handoff.settled_frame(numbers))

    async def serve(self, writer: ExchangeWriter, socket_path: Path) -> None:
        """Listen on ``socket_path``, which lies in a folder only this user can enter."""
        self._writer = writer
        self._server = await asyncio.start_unix_server(self._accept, path=socket_path)

    async def close(self) -> None:
        """Stop accepting and reading; the writer, stopped after this, settles what it has."""
        if self._server is not None:
            self._server.close()
        for task in list(self._clients):
            task.cancel()
        await asyncio.gather(*self._clients, return_exceptions=True)

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.get_running_loop().create_task(
            self._serve_proxy(reader, writer), name="understudy-recorder-client"
        )
        self._clients.add(task)
        task.add_done_callback(self._clients.discard)

    async def _serve_proxy(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        proxy = _Proxy(writer)
        try:
            while True:
                kind, payload = await handoff.read_frame(reader)
                if kind == handoff.EXCHANGE:
                    self._take(proxy, payload)
                elif kind == handoff.REPLAY and self._writer is not None:
                    self._writer.replay_soon()
                elif kind == handoff.METRICS:
                    proxy.send(handoff.frame(handoff.METRICS, self._metrics_text()))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the proxy went away; what it had not seen settled, it spilled itself
        except handoff.BadFrame as exc:
            log.error("recorder got a malformed frame; dropping the connection", error=str(exc))
        finally:
            proxy.open = False
            with contextlib.suppress(Exception):
                writer.close()

    def _take(self, proxy: _Proxy, payload: bytes) -> None:
        seq, line = handoff.split_exchange(payload)
        try:
            exchange = codec.loads(line)
        except (ValueError, KeyError, TypeError) as exc:
            # Only a bug makes an unreadable line: count it, and let the proxy forget it.
            assert self._writer is not None
            self._writer.metrics.dropped.inc()
            log.error("recorder got an unreadable exchange", error=type(exc).__name__)
            proxy.send(handoff.settled_frame([seq]))
            return
        assert self._writer is not None
        self._owners[exchange.id] = (proxy, seq)
        self._writer.put(exchange)
