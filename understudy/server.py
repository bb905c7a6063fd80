"""Running an aiohttp app on a socket, with graceful shutdown on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

import uvloop
from aiohttp import web


@dataclass
class RunningSite:
    runner: web.AppRunner
    url: str

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start_site(
    app: web.Application, host: str, port: int, *, shutdown_timeout: float = 10.0
) -> RunningSite:
    """Start serving ``app``; port 0 picks a free port. The URL has no trailing slash."""
    # Cancelling the handler when its client disconnects is what lets an
    # abandoned request cancel its upstream call at once.
    runner = web.AppRunner(
        app, handler_cancellation=True, access_log=None, shutdown_timeout=shutdown_timeout
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024, reuse_address=True)
    await site.start()
    bound_port = runner.addresses[0][1]
    return RunningSite(runner, f"http://{host}:{bound_port}")


async def wait_for_stop_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def run(main: Coroutine[Any, Any, int]) -> int:
    """Run ``main`` to completion on uvloop's faster event loop."""
    result: int = uvloop.run(main)
    return result
