"""Rollout state and the routing decision derived from it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class RolloutMode(StrEnum):
    OFF = "off"  # primary only
    SHADOW = "shadow"  # primary serves, candidate mirrored
    SPLIT = "split"  # a sticky percentage of subjects served by the candidate
    CUTOVER = "cutover"  # candidate serves everyone, primary is the fallback


@dataclass(frozen=True, slots=True)
class FlagState:
    """The rollout state for one flag key, as of ``version``."""

    key: str
    mode: RolloutMode
    candidate: str | None
    percent: float  # 0-100, share of subjects served by the candidate in split
    shadow_rate: float  # 0-1, share of primary-served requests mirrored to the candidate
    noise_rate: float  # 0-1, share of requests sent twice to the primary
    # 0-1, share of candidate-served requests also sent to the primary in the background,
    # so the comparison and the guardrails go on after cutover
    reverse_shadow_rate: float = 0.0
    version: int = 0
    killed: bool = False  # the kill switch: behave as OFF whatever the mode says
    stage: str | None = None  # the rollout plan's stage, once a plan drives the rollout
    paused: bool = False  # nothing moves the rollout automatically while paused


@dataclass(frozen=True, slots=True)
class RoutingDecision:
    """Which upstream serves a request and which are called in the background."""

    served: str  # upstream name that answers the client
    served_is_candidate: bool
    shadow: str | None  # candidate mirrored in the background, if any
    noise: bool  # also call the primary a second time
    mode: RolloutMode
    percent: float
    flag_version: int
    bucket: int  # the subject's sticky bucket, 0-9999
    reverse_shadow: bool = False  # the candidate serves; also call the primary in the background
