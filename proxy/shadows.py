"""Shadow candidates: further candidates mirrored beside the rollout's own.

The rollout concerns one candidate; these are only watched, each on its own share of
requests. As with ``decide``, the draws arrive as uniform samples (one per listed
candidate, independent of each other and of the decision's), so the choice is pure.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from core import RolloutMode, RoutingDecision
from proxy.config import ShadowCandidate


def chosen_shadow_candidates(
    listed: Sequence[ShadowCandidate],
    decision: RoutingDecision,
    *,
    rollout_candidate: str | None,
    draws: Sequence[float],
) -> tuple[str, ...]:
    """The listed candidates one request is mirrored to, in the listed order.

    Only requests the primary is to serve while a rollout is on (not off, not killed):
    each shadow is compared with the primary's answer. The rollout's own candidate is
    left to the decision, so no request reaches a candidate twice.
    """
    if len(draws) != len(listed):
        raise ValueError("one draw per listed shadow candidate")
    if decision.mode is RolloutMode.OFF or decision.served_is_candidate:
        return ()
    return tuple(
        c.name
        for c, draw in zip(listed, draws, strict=True)
        if c.name != rollout_candidate and draw < c.rate
    )


class ShadowCandidates:
    """The configured shadow candidates and the source of their draws."""

    def __init__(
        self, listed: Sequence[ShadowCandidate], draw: Callable[[], float] = random.random
    ) -> None:
        self._listed = tuple(listed)
        self._draw = draw

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self._listed)

    def choose(self, decision: RoutingDecision, rollout_candidate: str | None) -> tuple[str, ...]:
        draws = [self._draw() for _ in self._listed]
        return chosen_shadow_candidates(
            self._listed, decision, rollout_candidate=rollout_candidate, draws=draws
        )
