"""The stage plan: the ordered stages a rollout goes through, as data.

Each stage says how much traffic the candidate gets, how much evidence and time
it needs before it may be left, which metrics gate it, and whether leaving it
upwards is automatic or waits for a person (``understudy rollout promote``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from core import ConfigError, RolloutMode


class Promotion(StrEnum):
    AUTO = "auto"  # the controller promotes once the verdict allows it
    MANUAL = "manual"  # the verdict may allow it; a person promotes


@dataclass(frozen=True, slots=True)
class Stage:
    """One step of the plan. ``min_units`` None takes the verdict's own minimum."""

    name: str
    mode: RolloutMode  # shadow, split or cutover
    percent: float  # share of users the candidate serves (0 in shadow, 100 in cutover)
    min_units: int | None = None  # pairs in shadow, candidate-served requests otherwise
    min_duration_s: float = 0.0  # no promotion before this long in the stage
    max_duration_s: float | None = None  # longer without a decision: hold for a person
    gates: tuple[str, ...] = ()  # metrics that decide this stage; empty: every metric
    promotion: Promotion = Promotion.AUTO


@dataclass(frozen=True, slots=True)
class StagePlan:
    stages: tuple[Stage, ...]

    def __post_init__(self) -> None:
        check_plan(self.stages)

    @property
    def first(self) -> Stage:
        return self.stages[0]

    def named(self, name: str) -> Stage | None:
        return next((s for s in self.stages if s.name == name), None)

    def index(self, stage: Stage) -> int:
        return self.stages.index(stage)

    def after(self, stage: Stage) -> Stage | None:
        """The stage a promotion from ``stage`` goes to; None after the last."""
        i = self.index(stage) + 1
        return self.stages[i] if i < len(self.stages) else None

    def locate(
        self, stage: str | None, mode: RolloutMode, percent: float, candidate: str | None
    ) -> Stage | None:
        """Where a rollout state stands on the plan: by its recorded stage name, else by
        the traffic it sends (a state set by hand); None when it matches no stage."""
        if candidate is None or mode is RolloutMode.OFF:
            return None
        named = self.named(stage) if stage is not None else None
        if named is not None and (named.mode, named.percent) == (mode, percent):
            return named
        return next((s for s in self.stages if (s.mode, s.percent) == (mode, percent)), None)

    def next_from(self, mode: RolloutMode, percent: float) -> Stage | None:
        """For a state off the plan: the first stage that sends the candidate more traffic."""
        served = served_share(mode, percent)
        return next((s for s in self.stages if served_share(s.mode, s.percent) > served), None)


def served_share(mode: RolloutMode, percent: float) -> float:
    if mode is RolloutMode.CUTOVER:
        return 100.0
    return percent if mode is RolloutMode.SPLIT else 0.0


def check_plan(stages: tuple[Stage, ...]) -> None:
    """Raise ConfigError naming the first stage that breaks a rule of the plan."""
    if not stages:
        raise ConfigError("rollout.plan", "needs at least one stage")
    if stages[0].mode is not RolloutMode.SHADOW:
        raise ConfigError(
            "rollout.plan", "the first stage must be a shadow stage (rollback target)"
        )
    names = [s.name for s in stages]
    if len(set(names)) != len(names):
        raise ConfigError("rollout.plan", "stage names must be unique")
    previous = -1.0
    for s in stages:
        where = f"rollout.plan stage {s.name!r}"
        if s.mode is RolloutMode.OFF:
            raise ConfigError(where, "mode must be shadow, split or cutover")
        if s.mode is RolloutMode.SHADOW and s.percent != 0:
            raise ConfigError(where, "a shadow stage serves no users: percent must be 0")
        if s.mode is RolloutMode.SPLIT and not 0 < s.percent <= 100:
            raise ConfigError(where, "a split stage needs a percent above 0 and at most 100")
        if s.mode is RolloutMode.CUTOVER and s.percent != 100:
            raise ConfigError(where, "a cutover stage serves every user: percent must be 100")
        share = served_share(s.mode, s.percent)
        if share < previous or (share == previous and s.mode is not RolloutMode.CUTOVER):
            raise ConfigError(
                where, "each stage must send the candidate more traffic than the last"
            )
        previous = share
        if s.max_duration_s is not None and s.max_duration_s < s.min_duration_s:
            raise ConfigError(where, "max_duration must not be shorter than min_duration")


HOUR_S = 3600.0
DAY_S = 24 * HOUR_S


def default_plan() -> StagePlan:
    """shadow, 5, 25, 50, 75, 95, 100 %. A person starts serving users and makes the cutover;
    the controller takes the steps between."""
    split = [5.0, 25.0, 50.0, 75.0, 95.0]
    stages = [
        Stage("shadow", RolloutMode.SHADOW, 0.0, None, HOUR_S, 7 * DAY_S, (), Promotion.MANUAL),
        *(
            Stage(
                f"{p:g}%",
                RolloutMode.SPLIT,
                p,
                None,
                HOUR_S,
                2 * DAY_S,
                (),
                Promotion.MANUAL if p == split[-1] else Promotion.AUTO,
            )
            for p in split
        ),
        Stage("100%", RolloutMode.CUTOVER, 100.0, None, HOUR_S, None, (), Promotion.MANUAL),
    ]
    return StagePlan(tuple(stages))
