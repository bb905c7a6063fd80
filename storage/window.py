"""Which exchanges a question is about: the one window for listing, judging and reports."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement

from core import Route
from storage.models import ExchangeRow


@dataclass(frozen=True, slots=True)
class ExchangeWindow:
    """Exchanges by time (``since`` inclusive, ``until`` exclusive), route, candidate and
    flag version (``first_flag_version`` and ``last_flag_version`` inclusive: a rollout
    stage's own window). An unset field does not narrow the window.
    """

    candidate: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    route: Route | None = None
    first_flag_version: int | None = None
    last_flag_version: int | None = None

    @property
    def named_candidate(self) -> str:
        """The candidate, for questions that compare one (reports, judging)."""
        if self.candidate is None:
            raise ValueError("this question is about one candidate: the window names none")
        return self.candidate

    def conditions(self) -> list[ColumnElement[bool]]:
        """Time, route and flag versions; each query matches the candidate its own way."""
        e = ExchangeRow
        where: list[ColumnElement[bool]] = []
        if self.since is not None:
            where.append(e.created_at >= self.since)
        if self.until is not None:
            where.append(e.created_at < self.until)
        if self.route is not None:
            where.append(e.route == self.route.value)
        if self.first_flag_version is not None:
            where.append(e.flag_version >= self.first_flag_version)
        if self.last_flag_version is not None:
            where.append(e.flag_version <= self.last_flag_version)
        return where
