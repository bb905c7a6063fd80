"""From stored flag rows to the FlagState each route is served with.

The rules of resolution live here and only here: a route's own row overrides the
default row, a kill on the default row stops every route, embeddings stay in shadow
unless the operator allowed splitting them, and a candidate that is no longer
configured serves nobody.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from core import FlagState, RolloutMode, Route
from storage.flags import FlagRecord

SERVING_MODES = (RolloutMode.SPLIT, RolloutMode.CUTOVER)
EMBEDDINGS_SPLIT_SETTING = "UNDERSTUDY_ROLLOUT__ALLOW_EMBEDDINGS_SPLIT"
EMBEDDINGS_WHY = (
    "a candidate's embedding vectors live in a different space from the primary's, and "
    "mixing them in one index corrupts retrieval"
)


@dataclass(frozen=True, slots=True)
class RolloutRules:
    """What the configuration says about any rollout state: fixed for the process's life."""

    flag_key: str  # the sticky hash's key: changing it reshuffles which users are moved
    candidates: tuple[str, ...]  # the configured candidates, in order
    allow_embeddings_split: bool = False


def embeddings_held(route: Route | None, mode: RolloutMode, rules: RolloutRules) -> bool:
    """Whether ``mode`` would serve embeddings from the candidate without the operator's leave."""
    return route is Route.EMBEDDINGS and mode in SERVING_MODES and not rules.allow_embeddings_split


def row_for(rows: Mapping[str | None, FlagRecord], route: Route) -> FlagRecord:
    """The row that governs ``route``: its own, else the default. Needs a default row."""
    return rows.get(route.value) or rows[None]


def resolve(rows: Mapping[str | None, FlagRecord], route: Route, rules: RolloutRules) -> FlagState:
    default = rows[None]
    row = row_for(rows, route)
    mode = RolloutMode(row.mode)
    percent = row.percent
    if embeddings_held(route, mode, rules):
        mode, percent = RolloutMode.SHADOW, 0.0
    candidate = row.candidate if row.candidate in rules.candidates else None
    return FlagState(
        key=rules.flag_key,
        mode=mode,
        candidate=candidate,
        percent=percent,
        shadow_rate=row.shadow_rate,
        noise_rate=row.noise_rate,
        reverse_shadow_rate=row.reverse_shadow_rate,
        version=max(row.version, default.version),
        killed=row.killed or default.killed,
        stage=row.stage,
        paused=row.paused,
    )


@dataclass(frozen=True, slots=True)
class RolloutSnapshot:
    """Every route's FlagState as of one read of the store, plus the same states killed."""

    version: int
    states: Mapping[Route, FlagState]
    killed: Mapping[Route, FlagState]
    unknown_candidates: frozenset[str]  # stored but not configured: nobody is sent to them

    @classmethod
    def build(cls, rows: Mapping[str | None, FlagRecord], rules: RolloutRules) -> RolloutSnapshot:
        states = {route: resolve(rows, route, rules) for route in Route}
        return cls(
            version=max(r.version for r in rows.values()),
            states=states,
            killed={route: replace(s, killed=True) for route, s in states.items()},
            unknown_candidates=frozenset(
                r.candidate
                for r in rows.values()
                if r.candidate is not None and r.candidate not in rules.candidates
            ),
        )
