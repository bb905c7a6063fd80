"""Whether the database is down for the writer, and when to try it again."""

from __future__ import annotations

from dataclasses import dataclass

from storage.backoff import Backoff


@dataclass(slots=True)
class Outage:
    """The writer's view of the database: up, or down with the time of the next probe.

    The attempt count survives a probe that succeeds followed by a write that fails
    again, so a flapping database is probed ever less often; a stored batch resets it.
    """

    backoff: Backoff
    down: bool = False
    probe_at: float = 0.0
    attempts: int = 0

    def began(self, now: float) -> bool:
        """A write found the database unreachable; True if it was thought up until now."""
        was_up, self.down = not self.down, True
        self._schedule(now)
        return was_up

    def probe_due(self, now: float) -> bool:
        return self.down and now >= self.probe_at

    def seconds_to_probe(self, now: float) -> float:
        return max(self.probe_at - now, 0.0)

    def probe_failed(self, now: float) -> None:
        self._schedule(now)

    def probe_succeeded(self) -> None:
        self.down = False

    def stored(self) -> None:
        self.attempts = 0

    def _schedule(self, now: float) -> None:
        self.probe_at = now + self.backoff.delay(self.attempts)
        self.attempts += 1
