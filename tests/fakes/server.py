"""Run an aiohttp app on 127.0.0.1, on a free port, for a test.

`running(app)` serves from the test's own event loop. `ThreadedServer` serves
from a thread with its own loop, for tests that call a blocking client (the
sync `openai.OpenAI`) which would otherwise freeze the loop serving it.

Both run the app with handler_cancellation=True, so a handler is cancelled the
moment its client disconnects; that is how the fakes notice cancellations.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import TracebackType

from aiohttp import web

from ._base import SHUTDOWN_TIMEOUT_S

_HOST = "127.0.0.1"
_START_TIMEOUT_S = 10.0


class RunningServer:
    """A started app; `url` is its base, e.g. http://127.0.0.1:54321 (no trailing /)."""

    def __init__(self, runner: web.AppRunner, url: str) -> None:
        self._runner = runner
        self.url = url

    async def close(self) -> None:
        await self._runner.cleanup()


async def start_server(app: web.Application) -> RunningServer:
    """Start `app` on 127.0.0.1:0 in the running loop; close it with `.close()`."""
    runner = web.AppRunner(
        app,
        handler_cancellation=True,
        shutdown_timeout=SHUTDOWN_TIMEOUT_S,
        access_log=None,
    )
    await runner.setup()
    try:
        await web.TCPSite(runner, _HOST, 0).start()
    except BaseException:
        await runner.cleanup()
        raise
    port = runner.addresses[0][1]
    return RunningServer(runner, f"http://{_HOST}:{port}")


@asynccontextmanager
async def running(app: web.Application) -> AsyncIterator[RunningServer]:
    """`async with running(fake.app) as server:` — serve for the block's duration."""
    server = await start_server(app)
    try:
        yield server
    finally:
        await server.close()


class ThreadedServer:
    """Serve an app from a background thread with its own event loop.

    `start()` returns once the port is bound; `stop()` shuts the server down and
    joins the thread. Also usable as a (sync) context manager.
    """

    def __init__(self, app: web.Application) -> None:
        self._app = app
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: RunningServer | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("ThreadedServer is not started")
        return self._server.url

    def start(self) -> ThreadedServer:
        if self._thread is not None:
            raise RuntimeError("ThreadedServer already started")
        self._thread = threading.Thread(target=self._run, name="fake-upstream", daemon=True)
        self._thread.start()
        if not self._ready.wait(_START_TIMEOUT_S):
            raise RuntimeError("ThreadedServer did not start in time")
        if self._error is not None:
            raise RuntimeError("ThreadedServer failed to start") from self._error
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if thread.is_alive():
            loop.call_soon_threadsafe(loop.stop)
        thread.join()
        self._thread = self._loop = self._server = None

    def __enter__(self) -> ThreadedServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            try:
                self._server = loop.run_until_complete(start_server(self._app))
            except BaseException as exc:  # handed to start(), which raises it
                self._error = exc
                return
            finally:
                self._ready.set()
            loop.run_forever()
            # stop() only stops the loop; shut the server down in its own loop.
            loop.run_until_complete(self._server.close())
        finally:
            loop.close()
