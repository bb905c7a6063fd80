"""A progress line for long CLI runs: done of total, rate and time left.

On a terminal one line is redrawn in place; otherwise (a log file, CI) a plain line
is written now and then, so the output stays readable.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

TERMINAL_REDRAW_S = 0.2
PLAIN_LINE_EVERY_S = 5.0


def duration_text(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class Progress:
    """``done`` of ``total``; the rate counts only what this process did."""

    def __init__(
        self,
        label: str,
        total: int,
        done: int,
        stream: TextIO,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.total = total
        self.done = done
        self._stream = stream
        self._clock = clock
        self._terminal = stream.isatty()
        self._every = TERMINAL_REDRAW_S if self._terminal else PLAIN_LINE_EVERY_S
        self._started = clock()
        self._done_here = 0
        self._last_drawn: float | None = None

    def advance(self, count: int = 1) -> None:
        self.done += count
        self._done_here += count
        now = self._clock()
        if self._last_drawn is None or now - self._last_drawn >= self._every:
            self._draw(now)

    def close(self) -> None:
        """The last figures, and the end of the line on a terminal."""
        self._draw(self._clock())
        if self._terminal:
            self._stream.write("\n")
            self._stream.flush()

    def line(self, now: float) -> str:
        elapsed = now - self._started
        rate = self._done_here / elapsed if elapsed > 0 else 0.0
        share = f" ({100 * self.done / self.total:.0f} %)" if self.total else ""
        left = self.total - self.done
        eta = duration_text(left / rate) if rate > 0 else "unknown"
        return f"{self.label}: {self.done:,} of {self.total:,}{share}, {rate:.1f}/s, ETA {eta}"

    def _draw(self, now: float) -> None:
        self._last_drawn = now
        if self._terminal:
            # Carriage return and clear to the end: the line is redrawn in place.
            self._stream.write(f"\r{self.line(now)}\x1b[K")
        else:
            self._stream.write(self.line(now) + "\n")
        self._stream.flush()
