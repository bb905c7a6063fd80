"""A FlagSource whose state never changes: the rollout as configured at start-up."""

from __future__ import annotations

from core import FlagState, Route


class StaticFlagSource:
    def __init__(self, state: FlagState) -> None:
        self._state = state

    def current(self, route: Route) -> FlagState:
        return self._state
