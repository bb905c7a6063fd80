"""``[[rollout.plan]]`` / ``UNDERSTUDY_ROLLOUT__PLAN``: the stage plan, mapped onto rollout's."""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

from core import RolloutMode
from core.verdict import MetricName
from rollout.plan import Promotion, Stage, StagePlan, default_plan
from storage.timespec import parse_duration
from understudy.evaluation_settings import EvaluationSettings


def _seconds(value: object) -> object:
    """A duration as people write it (``90s``, ``1h``, ``2d``) or a number of seconds."""
    if isinstance(value, str):
        return parse_duration(value).total_seconds()
    return value


class StageSettings(BaseModel):
    model_config = {"extra": "forbid"}

    name: str = Field(min_length=1, max_length=40)
    mode: RolloutMode
    percent: float = Field(default=0.0, ge=0, le=100)
    min_units: int | None = Field(default=None, ge=1)  # None: evaluation.min_samples
    min_duration: float = Field(default=0.0, ge=0)  # seconds, or "15m", "1h", "2d"
    max_duration: float | None = Field(default=None, gt=0)  # None: no limit
    gates: list[MetricName] = Field(default_factory=list)  # empty: every verdict metric
    promotion: Promotion = Promotion.AUTO

    _durations = field_validator("min_duration", "max_duration", mode="before")(_seconds)

    def stage(self) -> Stage:
        return Stage(
            name=self.name,
            mode=self.mode,
            percent=self.percent,
            min_units=self.min_units,
            min_duration_s=self.min_duration,
            max_duration_s=self.max_duration,
            gates=tuple(self.gates),
            promotion=self.promotion,
        )


def default_stage_settings() -> list[StageSettings]:
    return [
        StageSettings(
            name=s.name,
            mode=s.mode,
            percent=s.percent,
            min_units=s.min_units,
            min_duration=s.min_duration_s,
            max_duration=s.max_duration_s,
            gates=[MetricName(g) for g in s.gates],
            promotion=s.promotion,
        )
        for s in default_plan().stages
    ]


def gates_not_measured(stages: list[StageSettings], evaluation: EvaluationSettings) -> str | None:
    """What is wrong when a stage gates on a metric the verdict does not measure, else None."""
    if not any(s.gates for s in stages):
        return None  # evaluation (and scipy) is loaded only for a plan that needs the check
    measured = [m.name for m in evaluation.config().metrics]
    for s in stages:
        missing = [g for g in s.gates if g not in measured]
        if missing:
            return (
                f"rollout.plan stage {s.name!r} gates on {missing[0].value!r}, which the verdict "
                f"does not measure; it measures {', '.join(measured)}"
            )
    return None


def stage_plan(stages: list[StageSettings]) -> StagePlan:
    """The plan; raises ConfigError naming the stage that breaks a rule."""
    return StagePlan(tuple(s.stage() for s in stages))


class ControllerSettings(BaseModel):
    model_config = {"extra": "forbid"}

    # Run the rollout controller in `understudy serve` (one replica leads at a time).
    enabled: bool = True
    interval_s: float = Field(default=5.0, gt=0, le=300)  # between two looks at the verdict
