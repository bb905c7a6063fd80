"""Routing a Responses request: a follow-up goes to the arm holding its parent, whatever
the percentage says now, and a request a translating candidate cannot carry stays on the
primary. Pure: the handler looks the parent up and counts what this decides.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from core import FlagState, RolloutMode, RoutingDecision
from core.responses import ResponseOwner

PARENT_NOT_HELD = "parent_not_held"  # a mirror skipped: its arm lacks the parent response
PARENT_UNKNOWN = "parent_unknown"  # no arm is known to hold the parent: the primary serves
HOLDER_OFF = "parent_holder_off"  # the parent's candidate is killed or gone: the primary serves

_MIRRORING = (RolloutMode.SHADOW, RolloutMode.SPLIT, RolloutMode.CUTOVER)


@dataclass(frozen=True, slots=True)
class Draws:
    shadow: float
    noise: float


@dataclass(frozen=True, slots=True)
class Pinned:
    decision: RoutingDecision
    held_back: str | None = None  # why the candidate is not called where the flag says so
    skipped: tuple[tuple[str, str], ...] = ()  # mirrors not made: (upstream, reason)
    # A follow-up the primary serves in place of its parent's candidate: the primary's
    # own response for that turn, when it made one (a reverse shadow), else None.
    primary_parent: str | None = None
    moved: bool = False  # the percentage alone would have routed it elsewhere
    refused: bool = False  # its parent's holder cannot carry it, and nobody else holds it
    untranslatable: str | None = None  # what a translating candidate cannot carry


@dataclass(frozen=True, slots=True)
class Situation:
    """What the routing of one Responses request depends on, beyond the flag."""

    primary: str
    candidates: frozenset[str]  # configured
    follow_up: bool  # it names a previous_response_id
    parent: ResponseOwner | None  # who holds that parent, when known
    # For each candidate in play, what a translation could not carry in this request.
    untranslatable: dict[str, str | None] = field(default_factory=dict)


def _primary_only(decision: RoutingDecision, primary: str, noise: bool) -> RoutingDecision:
    return replace(
        decision,
        served=primary,
        served_is_candidate=False,
        shadow=None,
        reverse_shadow=False,
        noise=noise,
    )


def pin(flag: FlagState, decision: RoutingDecision, draws: Draws, s: Situation) -> Pinned:
    touches_candidate = decision.served_is_candidate or decision.shadow is not None
    if not s.follow_up:
        reason = s.untranslatable.get(flag.candidate or "")
        if reason is None or not touches_candidate:
            return Pinned(decision)
        decision = _primary_only(
            decision, s.primary, draws.noise < flag.noise_rate and not flag.killed
        )
        return Pinned(decision, f"untranslatable:{reason}", untranslatable=reason)
    parent = s.parent
    noise = not flag.killed and draws.noise < flag.noise_rate
    if parent is None:
        skipped = ((decision.shadow, PARENT_NOT_HELD),) if decision.shadow else ()
        held = PARENT_UNKNOWN if touches_candidate else None
        return Pinned(_primary_only(decision, s.primary, noise), held, skipped)
    if parent.owner == s.primary:
        return _on_primary(flag, decision, draws, s, parent, noise)
    if parent.owner in s.candidates and not flag.killed:
        return _on_candidate(flag, decision, draws, s, parent)
    return Pinned(
        _primary_only(decision, s.primary, noise),
        HOLDER_OFF,
        primary_parent=parent.twin_id,
        moved=True,
    )


def _on_primary(
    flag: FlagState,
    decision: RoutingDecision,
    draws: Draws,
    s: Situation,
    parent: ResponseOwner,
    noise: bool,
) -> Pinned:
    candidate = flag.candidate
    wanted = (
        candidate is not None
        and not flag.killed
        and decision.mode in _MIRRORING
        and draws.shadow < flag.shadow_rate
    )
    pinned = _primary_only(decision, s.primary, noise)
    moved = decision.served_is_candidate
    if not wanted or candidate is None:
        return Pinned(pinned, moved=moved)
    if (reason := s.untranslatable.get(candidate)) is not None:
        return Pinned(pinned, f"untranslatable:{reason}", moved=moved, untranslatable=reason)
    if parent.twin_id is None or parent.candidate != candidate:
        return Pinned(pinned, PARENT_NOT_HELD, ((candidate, PARENT_NOT_HELD),), moved=moved)
    return Pinned(replace(pinned, shadow=candidate), moved=moved)


def _on_candidate(
    flag: FlagState, decision: RoutingDecision, draws: Draws, s: Situation, parent: ResponseOwner
) -> Pinned:
    owner = parent.owner
    moved = decision.served != owner
    if (reason := s.untranslatable.get(owner)) is not None:
        return Pinned(decision, f"untranslatable:{reason}", refused=True, untranslatable=reason)
    reverse = draws.shadow < flag.reverse_shadow_rate
    skipped: tuple[tuple[str, str], ...] = ()
    if reverse and parent.twin_id is None:
        reverse, skipped = False, ((s.primary, PARENT_NOT_HELD),)
    pinned = replace(
        decision,
        served=owner,
        served_is_candidate=True,
        shadow=None,
        reverse_shadow=reverse,
        # Noise needs the primary's answer to compare with: the reverse shadow's.
        noise=reverse and draws.noise < flag.noise_rate,
    )
    return Pinned(pinned, None, skipped, moved=moved)
