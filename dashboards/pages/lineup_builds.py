"""Lineups for the candidates page, built in the background and kept a short while.

A lineup runs every candidate's report on the range (seconds on a large database), so,
as the overview does with a range's first count, the page does not wait for it: the
build runs on as a tracked task (``BackgroundCounts``: one build per range at a time,
shared by the pages asking meanwhile, cancelled when the UI stops) and the page says it
is counting and reloads. A finished lineup is kept ``keep_s`` per range: the reload,
and every page in that time, shows it without building it again.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from dashboards.pages.background_counts import WAIT_S, BackgroundCounts
from evaluation.lineup import Lineup

# Builds the lineup of the exchanges since a time (None: all of them); None when no
# candidate has shadow pairs there. The server's is ``understudy.lineup_report.lineup_since``.
LineupSource = Callable[[datetime | None], Awaitable[Lineup | None]]

KEEP_S = 60.0


@dataclass(frozen=True, slots=True)
class BuiltLineup:
    since: datetime | None  # where the range started when it was built
    built_at: datetime
    lineup: Lineup | None  # None: no candidate has shadow pairs in the range


class LineupBuilds:
    def __init__(
        self,
        keep_s: float = KEEP_S,
        wait_s: float = WAIT_S,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.keep_s = keep_s
        self.builds = BackgroundCounts(wait_s, what="lineup build")
        self._clock = clock
        self._kept: dict[str, tuple[float, BuiltLineup]] = {}

    async def within(
        self, key: str, build: Callable[[], Awaitable[BuiltLineup]]
    ) -> BuiltLineup | None:
        """The range's lineup if one was kept or is built within the wait; else None, and
        the build runs on (a build already running for ``key`` is not started again).
        A failed build's error is raised to the page that next asks."""

        async def kept_or_built() -> BuiltLineup:
            kept = self._kept.get(key)
            if kept is not None and self._clock() - kept[0] < self.keep_s:
                return kept[1]
            built = await build()
            self._kept[key] = (self._clock(), built)
            return built

        return await self.builds.within(key, kept_or_built)

    @property
    def running(self) -> int:
        return self.builds.running

    async def close(self) -> None:
        """Cancel every build and forget the kept lineups."""
        self._kept.clear()
        await self.builds.close()
