"""The rollout's persisted state: seed it, read it, change it with an audit entry."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core import Route
from rollout.changes import NewValues, RolloutAction, StageMove, apply, base_row
from rollout.state import RolloutRules
from storage.database import Database
from storage.flags import (
    AuditNote,
    FlagRecord,
    Seed,
    append_flag,
    current_flags,
    seed_flags,
)

SEED_ACTOR = "settings"  # the first row comes from the configuration, not a person


@dataclass(frozen=True, slots=True)
class Change:
    """A change as written: the route's row before and after, and the version it made."""

    route: Route | None
    before: FlagRecord  # the row the route followed: its own, or the default it inherited
    after: FlagRecord

    @property
    def version(self) -> int:
        return self.after.version


def _apply(
    rows: Mapping[str | None, FlagRecord],
    action: RolloutAction,
    route: Route | None,
    rules: RolloutRules,
    values: NewValues | StageMove | None,
) -> tuple[FlagRecord, FlagRecord]:
    base = base_row(rows, route)
    return base, apply(action, base, route, rules, values)


class RolloutStore:
    """Changes to the rollout, each checked against ``rules`` and audited.

    ``seed`` is the state the settings describe: it becomes the default row the
    first time anything reads or changes an empty store.
    """

    def __init__(self, db: Database, rules: RolloutRules, seed: FlagRecord) -> None:
        self._db = db
        self._rules = rules
        note = AuditNote(actor=SEED_ACTOR, action=RolloutAction.SEED, reason="initial settings")
        self._seed = Seed(seed, note)

    async def rows(self) -> dict[str | None, FlagRecord]:
        """The current rows; the seed (version 0, not written) when the store is empty."""
        rows = await current_flags(self._db)
        return rows or {None: self._seed.record}

    async def ensure_seeded(self) -> None:
        await seed_flags(self._db, self._seed.record, self._seed.note)

    async def change(
        self,
        action: RolloutAction,
        *,
        actor: str,
        reason: str | None,
        route: Route | None = None,
        values: NewValues | StageMove | None = None,
        expected_version: int | None = None,
        verdict: Mapping[str, Any] | None = None,
    ) -> Change:
        """Apply ``action`` to ``route`` (None: the default for every route).

        Raises ``RolloutRefused`` when a rule forbids it and ``StaleVersion`` when
        ``expected_version`` is not the latest; nothing is written then.
        """
        before, after = await append_flag(
            self._db,
            None if route is None else route.value,
            lambda rows: _apply(rows, action, route, self._rules, values),
            AuditNote(actor=actor, action=action, reason=reason, verdict=verdict),
            seed=self._seed,
            expected_version=expected_version,
        )
        return Change(route=route, before=before, after=after)
