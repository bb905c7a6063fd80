"""Counts that may outlast their page.

Building the candidates page's lineup can take seconds on a million exchanges.
Rather than hold the page that long, the count runs on as a tracked task and the
page says so and reloads; the reload takes the finished result. Two pages asking at
once share one count.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

import structlog

T = TypeVar("T")

log = structlog.get_logger("understudy.ui")

WAIT_S = 0.25  # how long a page waits for its count before saying it is counting


class BackgroundCounts:
    """One count at a time per key; every task is kept until its result is taken or
    ``close`` cancels it. ``what`` names the tasks (the candidates page builds lineups
    this way too)."""

    def __init__(self, wait_s: float = WAIT_S, *, what: str = "count") -> None:
        self.wait_s = wait_s
        self.what = what
        self._running: dict[Hashable, asyncio.Task[Any]] = {}

    async def within(self, key: Hashable, count: Callable[[], Awaitable[T]]) -> T | None:
        """``count()``'s result if it is done within ``wait_s``; else None, and it runs on.

        A count already running for ``key`` is not started again (None at once). One that
        finished since is taken away (its errors raised here), and a fresh count made:
        it is as of now.
        """
        running = self._running.get(key)
        if running is not None:
            if not running.done():
                return None
            del self._running[key]
            running.result()

        async def counted() -> T:
            return await count()

        task = asyncio.create_task(counted(), name=f"{self.what} {key}")
        # Kept before waiting: a page that goes away meanwhile leaves it tracked here.
        self._running[key] = task
        done, _ = await asyncio.wait({task}, timeout=self.wait_s)
        if task not in done:
            return None
        del self._running[key]
        return task.result()

    @property
    def running(self) -> int:
        return sum(1 for task in self._running.values() if not task.done())

    async def close(self) -> None:
        """Cancel every count; one that had failed unseen is logged."""
        tasks = list(self._running.values())
        self._running.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                try:
                    await task
                except Exception as exc:  # nobody is left to show it to
                    log.warning("background_count_failed", what=self.what, error=type(exc).__name__)
