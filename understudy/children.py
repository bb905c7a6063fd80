"""Child processes of ``understudy serve``: started, watched, restarted, and stopped in order.

A child is ready once it accepts connections on its Unix socket. Its standard
input is its lifeline: closing it asks the child to finish its work and exit, and
a parent that dies closes it too, so no child outlives ``serve``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

import structlog
from prometheus_client import Counter

from storage.backoff import Backoff
from storage.errors import StorageError

log = structlog.get_logger("understudy")

READY_TIMEOUT_S = 60.0  # a schema check may upgrade an embedded database first
RESTART = Backoff(base_s=0.2, cap_s=5.0)


class ChildFailed(StorageError):
    """A child exited or hung before it was ready."""

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class ChildProcess:
    """One child, kept running until ``stop``; restarted (and counted) when it dies."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        socket_path: Path,
        restarts: Counter,
        *,
        stop_grace_s: float,
        own_session: bool = False,
    ) -> None:
        self.name = name
        self._argv = argv
        self.socket_path = socket_path
        self._restarts = restarts
        self._stop_grace_s = stop_grace_s
        # In a session of its own, a Ctrl-C in the terminal reaches only the parent.
        self._own_session = own_session
        self._process: asyncio.subprocess.Process | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    async def start(self) -> None:
        """Start the child and wait until it takes connections."""
        await self._spawn()
        self._watcher = asyncio.create_task(self._watch(), name=f"understudy-watch-{self.name}")

    async def _spawn(self) -> None:
        _remove(self.socket_path)  # a dead child's socket
        process = await asyncio.create_subprocess_exec(
            *self._argv, stdin=asyncio.subprocess.PIPE, start_new_session=self._own_session
        )
        self._process = process
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_TIMEOUT_S
        while not await self._accepting():
            if process.returncode is not None:
                raise ChildFailed(f"{self.name} exited with {process.returncode}", process.returncode)
            if loop.time() > deadline:
                process.kill()
                raise ChildFailed(f"{self.name} did not start in {READY_TIMEOUT_S:g} s")
            await asyncio.sleep(0.05)

    async def _accepting(self) -> bool:
        try:
            _, writer = await asyncio.open_unix_connection(self.socket_path)
        except OSError:
            return False
        writer.close()
        return True

    async def _watch(self) -> None:
        attempt = 0
        while not self._stopping:
            assert self._process is not None
            code = await self._process.wait()
            if self._stopping:
                return
            log.error(
                "child_exited", child=self.name, exit_code=code, restart_in_s=RESTART.delay(attempt)
            )
            await asyncio.sleep(RESTART.delay(attempt))
            attempt += 1
            try:
                await self._spawn()
            except (ChildFailed, OSError) as exc:
                log.error("child_restart_failed", child=self.name, error=str(exc))
                continue
            self._restarts.inc()
            attempt = 0

    async def stop(self) -> None:
        """Close the lifeline; the child finishes and exits (killed if it overstays)."""
        self._stopping = True
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
        process = self._process
        if process is not None and process.returncode is None:
            if process.stdin is not None:
                process.stdin.close()
            try:
                await asyncio.wait_for(process.wait(), self._stop_grace_s + 10)
            except TimeoutError:
                log.error("child_did_not_stop", child=self.name)
                process.kill()
                await process.wait()
        _remove(self.socket_path)


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
