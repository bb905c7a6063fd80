"""The host's metrics from any worker: each worker shows its siblings' and the recorder's too.

Each worker serves its own registry on a Unix socket in the workers' shared
folder (``worker-N.sock``); the worker that answers a scrape of ``/metrics`` reads
its siblings' sockets and the recorder's, and merges them (understudy/metrics_merge.py).
A worker that has just been restarted starts its counters from zero, which
Prometheus reads as a counter reset.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
from aiohttp import web

from understudy.metrics_merge import merge

SIBLING_TIMEOUT_S = 1.0
Exposition = Callable[[], Awaitable[bytes]]


def worker_socket(folder: Path, index: int) -> Path:
    return folder / f"worker-{index}.sock"


def supervisor_socket(folder: Path) -> Path:
    """Where the parent serves its own metrics (restarts of workers and of the recorder)."""
    return folder / "supervisor.sock"


class WorkerSeat:
    """Worker ``index`` of ``count``, sharing ``folder`` with the others."""

    def __init__(self, folder: Path, index: int, count: int) -> None:
        self.folder = folder
        self.index = index
        self.count = count
        self._own: Exposition | None = None
        self._recorder: Exposition | None = None
        self._runner: web.AppRunner | None = None

    def attach(self, own: Exposition, recorder: Exposition | None) -> None:
        self._own, self._recorder = own, recorder

    async def start(self) -> None:
        """Serve this worker's own metrics to its siblings; the parent waits for it too."""
        assert self._own is not None
        self._runner = await serve_metrics(worker_socket(self.folder, self.index), self._own)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def exposition(self) -> bytes:
        """Every worker's metrics merged, then the recorder's."""
        assert self._own is not None
        others = [worker_socket(self.folder, i) for i in range(self.count) if i != self.index]
        others.append(supervisor_socket(self.folder))
        texts = await asyncio.gather(self._own(), *(_read_metrics(path) for path in others))
        recorder = await self._recorder() if self._recorder is not None else b""
        return merge([t for t in texts if t]) + recorder



async def _read_metrics(path: Path) -> bytes:
    connector = aiohttp.UnixConnector(path=str(path))
    timeout = aiohttp.ClientTimeout(total=SIBLING_TIMEOUT_S)
    try:
        async with (
            aiohttp.ClientSession(connector=connector, timeout=timeout) as session,
            session.get("http://worker/metrics") as response,
        ):
            return await response.read() if response.status == 200 else b""
    except (aiohttp.ClientError, TimeoutError, OSError):
        return b""  # restarting: its figures are missing from this scrape only


async def serve_metrics(path: Path, exposition: Exposition) -> web.AppRunner:
    """Serve ``exposition`` at ``/metrics`` on the Unix socket ``path``."""

    async def handler(_request: web.Request) -> web.Response:
        return web.Response(body=await exposition())

    app = web.Application()
    app.router.add_get("/metrics", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.UnixSite(runner, str(path)).start()
    return runner
